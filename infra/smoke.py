"""A throwaway stack on a real AWS account, checked end to end, then deleted (scripts/smoke-aws).

Deploys the template as STACK (sam build && sam deploy, x86_64 unless ARCH says otherwise),
subscribes a temporary SQS queue to the orders topic, posts a valid and an invalid order,
polls GET /orders/{orderID} until the order is STORED, waits for its OrderCreated
notification on the temporary queue, and removes the queue, the subscription and the stack
(sam delete), whatever happened. It costs a few cents and needs credentials that may create
IAM roles. It cannot run offline: infra/tests/test_smoke.py runs its AWS calls against moto.

Usage: scripts/smoke-aws STACK   (environment: AWS credentials and region; SMOKE_EMAIL, the
address both e-mail subscriptions are made for, default smoke@example.com)
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import boto3


def temporary_subscription(sqs, sns, topic_arn: str, name: str) -> tuple[str, str]:
    """A queue subscribed to the topic (the topic may send to it); returns (queue URL, subscription ARN)."""
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True)
    return queue_url, subscription["SubscriptionArn"]


def wait_for_notification(sqs, queue_url: str, order_id: str, timeout_s: float = 120) -> dict:
    """The OrderCreated notification of `order_id`, from the SNS envelope on the queue."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", []):
            envelope = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            event = json.loads(envelope["Message"])
            if envelope.get("Subject") == "OrderCreated" and event.get("order", {}).get("orderID") == order_id:
                return envelope
    raise AssertionError(f"no OrderCreated notification for {order_id} within {timeout_s} s")


def remove_subscription(sqs, sns, queue_url: str, subscription_arn: str) -> None:
    sns.unsubscribe(SubscriptionArn=subscription_arn)
    sqs.delete_queue(QueueUrl=queue_url)


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def smoke(stack: str) -> None:
    email = os.environ.get("SMOKE_EMAIL", "smoke@example.com")
    arch = os.environ.get("ARCH", "x86_64")
    run = lambda *cmd: subprocess.run(cmd, check=True)  # noqa: E731
    run("sam", "build", "--parameter-overrides", f"Architecture={arch}")
    run(
        "sam", "deploy", "--stack-name", stack, "--no-confirm-changeset", "--resolve-s3",
        "--capabilities", "CAPABILITY_NAMED_IAM", "--parameter-overrides",
        f"NamePrefix={stack} Architecture={arch} NotificationEmail={email} AlarmEmail={email}",
    )
    session = boto3.session.Session()
    sqs, sns = session.client("sqs"), session.client("sns")
    out = {o["OutputKey"]: o["OutputValue"] for o in session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]}
    queue_url, subscription = temporary_subscription(sqs, sns, out["OrdersTopicArn"], f"{stack}-smoke-{uuid.uuid4().hex[:6]}")
    try:
        order_id = f"smoke-{uuid.uuid4().hex[:12]}"
        order = {"orderID": order_id, "customerId": "smoke", "items": [{"sku": "S-1", "quantity": 2, "unitPrice": 1.25}], "currency": "EUR"}
        status, answer = http("POST", f"{out['ApiUrl']}/orders", order)
        assert (status, answer.get("orderID")) == (202, order_id), (status, answer)
        status, answer = http("POST", f"{out['ApiUrl']}/orders", {"customerId": "smoke", "items": [], "currency": "euro"})
        assert status == 400 and isinstance(answer.get("error"), str), (status, answer)
        deadline = time.monotonic() + 120
        while True:
            status, stored = http("GET", f"{out['ApiUrl']}/orders/{order_id}")
            if status == 200:
                assert stored["status"] == "STORED" and stored["total"] == 2.5, stored
                break
            assert status == 404 and time.monotonic() < deadline, (status, stored)
            time.sleep(2)
        wait_for_notification(sqs, queue_url, order_id)
        print(f"smoke test of {stack}: accepted, refused, stored and announced")
    finally:
        remove_subscription(sqs, sns, queue_url, subscription)
        run("sam", "delete", "--stack-name", stack, "--no-prompts")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-3], file=sys.stderr)
        sys.exit(2)
    smoke(sys.argv[1])
