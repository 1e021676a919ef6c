"""One command each to put back what the AWS deployment set aside (scripts/aws-redrive).

  orders         the orders queue's dead-letter queue back onto the queue, by SQS
                 StartMessageMoveTask (to the queue each message came from):
                 https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html
  announcements  the announcements publish-orders held back while SNS did not take them
                 (crates/aws/src/held_back.rs), published to the orders topic as they were
                 held, each deleted once SNS took it.

Usage: scripts/aws-redrive STACK orders|announcements   (AWS credentials and region as for the AWS CLI)
"""

import json
import sys

import boto3


def outputs(cloudformation, stack: str) -> dict:
    stack = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def redrive_orders(sqs, dead_letter_queue_arn: str) -> str:
    return sqs.start_message_move_task(SourceArn=dead_letter_queue_arn)["TaskHandle"]


def republish(sqs, sns, queue_url: str, topic_arn: str, limit: int = 100_000) -> int:
    """Publishes held-back announcements until the queue is empty or SNS refuses one."""
    published = 0
    while published < limit:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not messages:
            return published
        for message in messages:
            held = json.loads(message["Body"])
            # An order's announcement is held as SnsTopic sent it: MessageStructure=json with
            # the event under "default" and the readable mail under "email".
            structure = {"MessageStructure": held["MessageStructure"]} if "MessageStructure" in held else {}
            sns.publish(
                TopicArn=topic_arn,
                Subject=held["Subject"],
                Message=held["Message"],
                MessageAttributes=held.get("MessageAttributes", {}),
                **structure,
            )
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            published += 1
    return published


def main(argv: list[str], session=None) -> int:
    if len(argv) != 2 or argv[1] not in ("orders", "announcements"):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    stack, what = argv
    session = session or boto3.session.Session()
    out = outputs(session.client("cloudformation"), stack)
    sqs = session.client("sqs")
    if what == "orders":
        handle = redrive_orders(sqs, out["OrdersDeadLetterQueueArn"])
        print(f"moving the dead letters of {stack} back onto its queue (task {handle})")
    else:
        count = republish(sqs, session.client("sns"), out["HeldBackQueueUrl"], out["OrdersTopicArn"])
        print(f"republished {count} held-back announcement(s) of {stack}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
