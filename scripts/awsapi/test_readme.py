"""The README's boto3 consumer and AWS CLI commands run as written against the real server
(only the endpoint is this test server's), so the README cannot rot."""

import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.request

import boto3
import pytest

from conftest import Server, wait_for

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BIN = pathlib.Path(sys.executable).parent
README_ENDPOINT = "http://127.0.0.1:8080"


def block(marker, language):
    """The fenced block that follows `<!-- marker -->` in the README."""
    return re.search(rf"<!-- {marker} -->\n```{language}\n(.*?)```", README.read_text(), re.S).group(1)


@pytest.fixture
def readme_server():
    """A server of its own, so what one test reads from a queue cannot reach the other."""
    s = Server()
    yield s
    s.stop()


def consumer(endpoint):
    """The README's consumer, pointed at `endpoint` (its only change), started."""
    code = block("awsapi-example", "python")
    assert code.count(f'endpoint_url="{README_ENDPOINT}"') == 2
    return subprocess.Popen([sys.executable, "-c", code.replace(README_ENDPOINT, endpoint)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_readme_consumer_subscribes_places_an_order_and_receives_its_order_created_event(readme_server):
    proc = consumer(readme_server.url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "['ord-sqs-1']"
    # What it subscribed is serve's own queue subscription, with the filter policy.
    status, subscriptions = readme_server.http("GET", "/subscriptions")
    assert status == 200
    (warehouse,) = [s for s in subscriptions["subscriptions"] if s["endpoint"] == "warehouse"]
    assert warehouse["protocol"] == "queue"
    assert warehouse["filterPolicy"] == {"eventType": ["OrderCreated"], "currency": ["EUR"]}
    assert warehouse["rawMessageDelivery"] is True


def test_the_same_consumer_runs_unchanged_against_moto_standing_in_for_aws():
    """moto plays AWS: the topic, the team's queue (which on AWS exists before it is
    subscribed) and the orders queue exist; the pipeline's part is played by publishing the
    order's event as `SnsTopic` does (MessageStructure json, the event as `default`)."""
    moto = os.environ.get("ORDERFLOW_MOTO_URL")
    assert moto, "ORDERFLOW_MOTO_URL is not set: run ./scripts/test-awsapi, which starts moto"
    urllib.request.urlopen(urllib.request.Request(moto + "/moto-api/reset", method="POST"), timeout=10)
    session = boto3.session.Session(region_name="us-east-1", aws_access_key_id="moto",
                                    aws_secret_access_key="moto")
    sns, sqs = session.client("sns", endpoint_url=moto), session.client("sqs", endpoint_url=moto)
    topic = sns.create_topic(Name="POC-Topic")["TopicArn"]
    sqs.create_queue(QueueName="warehouse")
    sqs.create_queue(QueueName="POC-Queue")
    proc = consumer(moto)
    wait_for(lambda: sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] or proc.poll() is not None)
    for order_id, currency in (("ord-usd-1", "USD"), ("ord-sqs-1", "EUR")):
        event = json.dumps({"type": "OrderCreated", "order": {"orderID": order_id, "currency": currency}})
        sns.publish(TopicArn=topic, MessageStructure="json",
                    Message=json.dumps({"default": event, "email": f"Order {order_id}"}),
                    MessageAttributes={"eventType": {"DataType": "String", "StringValue": "OrderCreated"},
                                       "currency": {"DataType": "String", "StringValue": currency}})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "['ord-sqs-1']", "the filter policy passed only the EUR order"


def test_the_readme_cli_commands_run_as_written(readme_server):
    script = block("awsapi-cli", "sh")
    assert f"aws --endpoint-url {README_ENDPOINT} " in script
    script = script.replace(README_ENDPOINT, readme_server.url)
    # The AWS CLI of .venv-awsapi, and no AWS configuration but what the commands set.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_EC2_METADATA_DISABLED="true")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    # Each command printed its JSON answer; the receive got the order's announcement.
    assert f"{readme_server.url}/000000000000/POC-Queue" in out.stdout
    decoder, text, answers = json.JSONDecoder(), out.stdout.strip(), []
    while text:
        value, end = decoder.raw_decode(text)
        answers.append(value)
        text = text[end:].lstrip()
    received = [a for a in answers if "Messages" in a]
    assert received, out.stdout
    envelope = json.loads(received[0]["Messages"][0]["Body"])
    assert json.loads(envelope["Message"])["order"]["orderID"] == "ord-cli-1"
    assert any("TaskHandle" in a for a in answers), "the move task started"
