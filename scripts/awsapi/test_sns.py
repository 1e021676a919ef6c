"""boto3 and the AWS CLI (clients we did not write) drive `orderflow serve`'s SNS Query protocol
on its topic POC-Topic.

What each test relies on is SNS's documented behaviour, cited per test:
- the Query protocol (form-encoded POST, XML answers in the 2010-03-31 namespace) and its
  common errors: https://docs.aws.amazon.com/sns/latest/api/CommonParameters.html and
  https://docs.aws.amazon.com/sns/latest/api/CommonErrors.html
- each operation's page under https://docs.aws.amazon.com/sns/latest/api/API_Operations.html
- SQS subscriptions, raw delivery and filter policies:
  https://docs.aws.amazon.com/sns/latest/dg/sns-sqs-as-subscriber.html,
  https://docs.aws.amazon.com/sns/latest/dg/sns-large-payload-raw-message-delivery.html,
  https://docs.aws.amazon.com/sns/latest/dg/sns-message-filtering.html
- the HTTP confirmation handshake:
  https://docs.aws.amazon.com/sns/latest/dg/SendMessageToHttp.prepare.html
"""

import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import uuid

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import API_KEY, REGION, Server, order, wait_for

TOPIC = "arn:aws:sns:us-east-1:000000000000:POC-Topic"
NS = "{http://sns.amazonaws.com/doc/2010-03-31/}"
AWS = str(pathlib.Path(sys.executable).parent / "aws")


@pytest.fixture(scope="module")
def sns_server():
    # Its own server: these tests make and remove many subscriptions. Room for more than one
    # page of ListSubscriptions (SNS pages by 100).
    s = Server("--max-subscriptions", "150")
    yield s
    s.stop()


def sns_client(server, access_key="anything", secret="anything", region=REGION):
    return boto3.client(
        "sns", endpoint_url=server.url, region_name=region,
        aws_access_key_id=access_key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture
def sns(sns_server):
    return sns_client(sns_server)


@pytest.fixture
def sqs(sns_server):
    return sns_server.client()


def error_code(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def queue_arn(name, account="000000000000", region=REGION):
    return f"arn:aws:sqs:{region}:{account}:{name}"


def subscribe_queue(sns, name, **attributes):
    return sns.subscribe(TopicArn=TOPIC, Protocol="sqs", Endpoint=queue_arn(name),
                         Attributes=attributes)["SubscriptionArn"]


def receive_all(sqs, url, want, timeout=20):
    """Receives (and deletes) until `want` messages arrived or the time is up."""
    got = []

    def enough():
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                     MessageAttributeNames=["All"]).get("Messages", []):
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            got.append(m)
        return len(got) >= want

    try:
        wait_for(enough, timeout=timeout)
    except AssertionError:
        pass
    return got


class Receiver:
    """A local HTTP subscriber: records every POST it gets."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                try:
                    body = json.loads(body)
                except ValueError:
                    pass  # a raw delivery is the message itself
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def of_type(self, kind):
        return [body for _, body in self.received if isinstance(body, dict) and body.get("Type") == kind]

    def close(self):
        self.httpd.shutdown()


# ---------------------------------------------------------------- the topic


def test_list_topics_names_poc_topic(sns):
    # API_ListTopics.html: Topics is a list of TopicArn.
    assert sns.list_topics()["Topics"] == [{"TopicArn": TOPIC}]


def test_create_topic_answers_poc_topic_s_arn_and_creates_no_other(sns):
    # API_CreateTopic.html: "This action is idempotent, so if the requester already owns a
    # topic with the specified name, that topic's ARN is returned without creating a new topic."
    assert sns.create_topic(Name="POC-Topic")["TopicArn"] == TOPIC
    for kwargs in (dict(Name="Other"), dict(Name="POC-Topic", Attributes={"DisplayName": "x"})):
        with pytest.raises(ClientError) as e:
            sns.create_topic(**kwargs)
        assert error_code(e) == ("InvalidParameter", 400)
    assert sns.list_topics()["Topics"] == [{"TopicArn": TOPIC}]


def test_get_topic_attributes_reports_the_arn_owner_and_subscription_counts(sns):
    # API_GetTopicAttributes.html: TopicArn, Owner, Policy, SubscriptionsConfirmed/Pending.
    attributes = sns.get_topic_attributes(TopicArn=TOPIC)["Attributes"]
    assert attributes["TopicArn"] == TOPIC
    assert attributes["Owner"] == "000000000000"
    assert json.loads(attributes["Policy"])["Statement"][0]["Resource"] == TOPIC
    assert int(attributes["SubscriptionsConfirmed"]) >= 0
    assert int(attributes["SubscriptionsPending"]) >= 0


def test_another_topic_is_not_found_and_another_account_s_is_not_ours(sns):
    # CommonErrors.html / API_GetTopicAttributes.html: NotFound (404) for a topic that does
    # not exist, AuthorizationError (403) without access, InvalidParameter (400) otherwise.
    with pytest.raises(ClientError) as e:
        sns.get_topic_attributes(TopicArn="arn:aws:sns:us-east-1:000000000000:Other")
    assert error_code(e) == ("NotFound", 404)
    assert isinstance(e.value, sns.exceptions.NotFoundException)
    with pytest.raises(ClientError) as e:
        sns.publish(TopicArn="arn:aws:sns:us-east-1:123456789012:POC-Topic", Message="x")
    assert error_code(e) == ("AuthorizationError", 403)
    with pytest.raises(ClientError) as e:
        sns.get_topic_attributes(TopicArn="not-an-arn")
    assert error_code(e) == ("InvalidParameter", 400)
    assert isinstance(e.value, sns.exceptions.InvalidParameterException)


# ---------------------------------------------------------------- sqs subscriptions


def test_an_sqs_subscription_with_a_filter_policy_and_raw_delivery_gets_only_matching_orders(sns_server, sns, sqs):
    # sns-sqs-as-subscriber.html: an sqs endpoint is the queue ARN; a queue in the same account
    # is confirmed at once. sns-message-filtering.html: only matching messages are delivered.
    # sns-large-payload-raw-message-delivery.html: raw delivery sends the message itself, its
    # attributes as SQS message attributes.
    arn = subscribe_queue(sns, "eur-orders", FilterPolicy=json.dumps({"currency": ["EUR"]}),
                          RawMessageDelivery="true")
    assert arn.startswith(TOPIC + ":")
    uuid.UUID(arn.rsplit(":", 1)[1])
    # sns-message-filtering.html: with FilterPolicyScope MessageBody the policy matches the
    # message's JSON (nested keys as nested objects).
    by_body = subscribe_queue(sns, "usd-by-body", FilterPolicyScope="MessageBody",
                              FilterPolicy=json.dumps({"order": {"currency": ["USD"]}}))
    url = sqs.get_queue_url(QueueName="eur-orders")["QueueUrl"]
    eur, usd = ("sns-eur-" + uuid.uuid4().hex[:8]), ("sns-usd-" + uuid.uuid4().hex[:8])
    for order_id, currency in ((usd, "USD"), (eur, "EUR")):
        status, _ = sns_server.http("POST", "/orders", order(order_id, currency=currency))
        assert status == 202, status
    got = receive_all(sqs, url, want=1)
    assert len(got) == 1, got
    event = json.loads(got[0]["Body"])
    assert event["type"] == "OrderCreated" and event["order"]["orderID"] == eur
    assert got[0]["MessageAttributes"]["currency"] == {"DataType": "String", "StringValue": "EUR"}
    assert got[0]["MessageAttributes"]["eventType"]["StringValue"] == "OrderCreated"
    # The USD order was announced too, and filtered out: nothing else arrives.
    wait_for(lambda: sns_server.http("GET", f"/orders/{usd}")[0] == 200)
    assert receive_all(sqs, url, want=1, timeout=2) == []
    enveloped = receive_all(sqs, sqs.get_queue_url(QueueName="usd-by-body")["QueueUrl"], want=1)
    assert [json.loads(json.loads(m["Body"])["Message"])["order"]["orderID"] for m in enveloped] == [usd]
    sns.unsubscribe(SubscriptionArn=arn)
    sns.unsubscribe(SubscriptionArn=by_body)


def test_subscribe_is_idempotent_and_the_same_queue_with_other_attributes_is_refused(sns):
    # API_Subscribe.html: "If the subscription already exists ... the same subscription ARN";
    # different attributes: InvalidParameter.
    first = subscribe_queue(sns, "idem", RawMessageDelivery="true")
    assert subscribe_queue(sns, "idem", RawMessageDelivery="true") == first
    with pytest.raises(ClientError) as e:
        subscribe_queue(sns, "idem", RawMessageDelivery="false")
    assert error_code(e) == ("InvalidParameter", 400)
    sns.unsubscribe(SubscriptionArn=first)


def test_subscribe_refuses_what_this_server_cannot_deliver(sns):
    # API_Subscribe.html: InvalidParameter for an unsupported protocol or a bad endpoint.
    cases = [
        dict(Protocol="sqs", Endpoint=queue_arn("q", account="123456789012")),
        dict(Protocol="sqs", Endpoint=queue_arn("POC-Queue")),
        dict(Protocol="sqs", Endpoint=queue_arn("bad name")),
        dict(Protocol="lambda", Endpoint="arn:aws:lambda:us-east-1:000000000000:function:f"),
        dict(Protocol="http", Endpoint="not a url"),
        dict(Protocol="email", Endpoint="a@example.com"),  # no --smtp-url on this server
        dict(Protocol="sqs", Endpoint=queue_arn("q"), Attributes={"FilterPolicy": "{not json"}),
        dict(Protocol="sqs", Endpoint=queue_arn("q"), Attributes={"DeliveryPolicy": "{}"}),
    ]
    for case in cases:
        with pytest.raises(ClientError) as e:
            sns.subscribe(TopicArn=TOPIC, **case)
        assert error_code(e) == ("InvalidParameter", 400), case


def test_subscription_attributes_are_read_and_changed(sns, sqs, sns_server):
    # API_GetSubscriptionAttributes.html and API_SetSubscriptionAttributes.html: FilterPolicy,
    # FilterPolicyScope and RawMessageDelivery; a changed policy applies to later messages.
    arn = subscribe_queue(sns, "attrs")
    got = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert got["SubscriptionArn"] == arn and got["TopicArn"] == TOPIC
    assert got["Protocol"] == "sqs" and got["Endpoint"] == queue_arn("attrs")
    assert got["PendingConfirmation"] == "false" and got["RawMessageDelivery"] == "false"
    assert got["Owner"] == "000000000000"
    assert "FilterPolicy" not in got
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicy",
                                    AttributeValue=json.dumps({"kind": ["wanted"]}))
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="RawMessageDelivery",
                                    AttributeValue="true")
    got = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert json.loads(got["FilterPolicy"]) == {"kind": ["wanted"]}
    assert got["FilterPolicyScope"] == "MessageAttributes"
    assert got["RawMessageDelivery"] == "true"
    for kind in ("unwanted", "wanted"):
        sns.publish(TopicArn=TOPIC, Message=f"a {kind} message",
                    MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}})
    url = sqs.get_queue_url(QueueName="attrs")["QueueUrl"]
    got = receive_all(sqs, url, want=1)
    assert [m["Body"] for m in got] == ["a wanted message"]
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicyScope",
                                    AttributeValue="MessageBody")
    assert sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["FilterPolicyScope"] == "MessageBody"
    with pytest.raises(ClientError) as e:
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="FilterPolicyScope",
                                        AttributeValue="Everything")
    assert error_code(e) == ("InvalidParameter", 400)
    with pytest.raises(ClientError) as e:
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="Unknown", AttributeValue="x")
    assert error_code(e) == ("InvalidParameter", 400)
    sns.unsubscribe(SubscriptionArn=arn)
    for call in (lambda: sns.get_subscription_attributes(SubscriptionArn=arn),
                 lambda: sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="RawMessageDelivery",
                                                         AttributeValue="true"),
                 lambda: sns.unsubscribe(SubscriptionArn=arn)):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == ("NotFound", 404)


def test_unsubscribe_removes_the_subscription_and_its_queue(sns, sqs):
    # API_Unsubscribe.html; the queue was made for the subscription, so it goes with it.
    arn = subscribe_queue(sns, "short-lived")
    assert sqs.get_queue_url(QueueName="short-lived")["QueueUrl"]
    sns.unsubscribe(SubscriptionArn=arn)
    listed = [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]
    assert arn not in listed
    with pytest.raises(ClientError):
        sqs.get_queue_url(QueueName="short-lived")
    with pytest.raises(ClientError) as e:
        sns.unsubscribe(SubscriptionArn="not-an-arn")
    assert error_code(e) == ("InvalidParameter", 400)


def test_list_subscriptions_pages_by_a_hundred_with_next_token(sns):
    # API_ListSubscriptions.html: "Each call returns a limited list of subscriptions, up to
    # 100. If there are more subscriptions, a NextToken is also returned."
    made = [subscribe_queue(sns, f"page-{i:03}") for i in range(101)]
    first = sns.list_subscriptions()
    assert len(first["Subscriptions"]) == 100 and first["NextToken"]
    by_topic = [s for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=TOPIC)
                for s in page["Subscriptions"]]
    everything = [s for page in sns.get_paginator("list_subscriptions").paginate() for s in page["Subscriptions"]]
    assert [s["SubscriptionArn"] for s in by_topic] == [s["SubscriptionArn"] for s in everything]
    listed = {s["SubscriptionArn"]: s for s in everything}
    assert set(made) <= set(listed)
    assert listed[made[0]] == {"SubscriptionArn": made[0], "Owner": "000000000000", "Protocol": "sqs",
                               "Endpoint": queue_arn("page-000"), "TopicArn": TOPIC}
    # A subscription removed between two pages hides none of the others.
    assert made[0] in [s["SubscriptionArn"] for s in first["Subscriptions"]]
    sns.unsubscribe(SubscriptionArn=made[0])
    second = sns.list_subscriptions(NextToken=first["NextToken"])
    assert [s["SubscriptionArn"] for s in second["Subscriptions"]] == \
        [s["SubscriptionArn"] for s in everything[100:]]
    with pytest.raises(ClientError) as e:
        sns.list_subscriptions(NextToken="nonsense")
    assert error_code(e) == ("InvalidParameter", 400)
    for arn in made[1:]:
        sns.unsubscribe(SubscriptionArn=arn)


# ---------------------------------------------------------------- http subscriptions


def test_an_http_subscriber_confirms_with_the_token_it_was_sent_then_gets_notifications(sns):
    # SendMessageToHttp.prepare.html: SNS POSTs a SubscriptionConfirmation with a Token; the
    # subscriber calls ConfirmSubscription (API_ConfirmSubscription.html) with it.
    # API_Subscribe.html: without ReturnSubscriptionArn an unconfirmed subscription answers
    # "pending confirmation"; ListSubscriptions shows "PendingConfirmation".
    receiver = Receiver()
    try:
        assert sns.subscribe(TopicArn=TOPIC, Protocol="http", Endpoint=receiver.url)["SubscriptionArn"] \
            == "pending confirmation"
        arn = sns.subscribe(TopicArn=TOPIC, Protocol="http", Endpoint=receiver.url,
                            ReturnSubscriptionArn=True)["SubscriptionArn"]
        assert arn.startswith(TOPIC + ":")
        listed = [s for s in sns.list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"]
                  if s["Endpoint"] == receiver.url]
        assert listed == [{"SubscriptionArn": "PendingConfirmation", "Owner": "000000000000",
                           "Protocol": "http", "Endpoint": receiver.url, "TopicArn": TOPIC}]
        assert sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["PendingConfirmation"] == "true"
        confirmation = wait_for(lambda: receiver.of_type("SubscriptionConfirmation"))[0]
        with pytest.raises(ClientError) as e:
            sns.confirm_subscription(TopicArn=TOPIC, Token="not-the-token")
        assert error_code(e) == ("InvalidParameter", 400)
        confirmed = sns.confirm_subscription(TopicArn=confirmation["TopicArn"], Token=confirmation["Token"])
        assert confirmed["SubscriptionArn"] == arn
        assert sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["PendingConfirmation"] == "false"
        sns.publish(TopicArn=TOPIC, Message="hello webhook", Subject="Grüße")
        note = wait_for(lambda: receiver.of_type("Notification"))[0]
        assert note["Message"] == "hello webhook" and note["Subject"] == "Grüße"
        sns.unsubscribe(SubscriptionArn=arn)
    finally:
        receiver.close()


class SmtpSink:
    """A real SMTP server (aiosmtpd, crates/cli/tests/peers/smtp_sink.py): one JSON line per mail."""

    def __init__(self):
        script = pathlib.Path(__file__).resolve().parents[2] / "crates/cli/tests/peers/smtp_sink.py"
        self.proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().split()[1])
        self.mails = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.mails.append(json.loads(line))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def test_an_email_subscriber_confirms_with_the_token_of_its_mail():
    # sns-email-notifications.html (https://docs.aws.amazon.com/sns/latest/dg/sns-email-notifications.html):
    # an email endpoint gets a confirmation message, and is pending until it confirms; the
    # token of its link confirms it through ConfirmSubscription (API_ConfirmSubscription.html).
    sink = SmtpSink()
    server = Server("--smtp-url", f"smtp://127.0.0.1:{sink.port}", "--smtp-from", "orders@shop.test")
    try:
        sns = sns_client(server)
        assert sns.subscribe(TopicArn=TOPIC, Protocol="email", Endpoint="ada@shop.test")["SubscriptionArn"] \
            == "pending confirmation"
        mail = wait_for(lambda: sink.mails)[0]
        assert mail["to"] == ["ada@shop.test"]
        link = next(w for w in mail["body"].split() if "/subscriptions/confirm?" in w)
        token = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["Token"][0]
        arn = sns.confirm_subscription(TopicArn=TOPIC, Token=token)["SubscriptionArn"]
        got = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
        assert got["Protocol"] == "email" and got["Endpoint"] == "ada@shop.test"
        assert got["PendingConfirmation"] == "false"
        sns.publish(TopicArn=TOPIC, Message="a note for people", Subject="Hello Ada")
        note = wait_for(lambda: sink.mails[1:])[0]
        assert note["subject"] == "Hello Ada" and "a note for people" in note["body"]
    finally:
        server.stop()
        sink.close()


def test_an_https_subscription_waits_for_its_confirmation(sns):
    # API_Subscribe.html: http and https endpoints must confirm; ReturnSubscriptionArn gives the
    # ARN at once. (Nothing here answers TLS; the pending subscription is what is checked.)
    arn = sns.subscribe(TopicArn=TOPIC, Protocol="https", Endpoint="https://127.0.0.1:9/hook",
                        ReturnSubscriptionArn=True)["SubscriptionArn"]
    got = sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]
    assert (got["Protocol"], got["Endpoint"], got["PendingConfirmation"]) == ("https", "https://127.0.0.1:9/hook", "true")
    with pytest.raises(ClientError) as e:
        sns.subscribe(TopicArn=TOPIC, Protocol="https", Endpoint="http://127.0.0.1:9/hook")
    assert error_code(e) == ("InvalidParameter", 400)
    # sns-message-delivery-retries.html: an HTTP/S subscription's DeliveryPolicy sets its
    # retries (numRetries after the first attempt, minDelayTarget..maxDelayTarget seconds).
    policy = {"healthyRetryPolicy": {"numRetries": 3, "minDelayTarget": 1, "maxDelayTarget": 20}}
    sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="DeliveryPolicy",
                                    AttributeValue=json.dumps(policy))
    got = json.loads(sns.get_subscription_attributes(SubscriptionArn=arn)["Attributes"]["DeliveryPolicy"])
    assert got["healthyRetryPolicy"] == dict(policy["healthyRetryPolicy"], backoffFunction="exponential")
    linear = {"healthyRetryPolicy": dict(policy["healthyRetryPolicy"], backoffFunction="linear")}
    with pytest.raises(ClientError) as e:
        sns.set_subscription_attributes(SubscriptionArn=arn, AttributeName="DeliveryPolicy",
                                        AttributeValue=json.dumps(linear))
    assert error_code(e) == ("InvalidParameter", 400)
    sns.unsubscribe(SubscriptionArn=arn)


# ---------------------------------------------------------------- publishing


def test_a_published_message_reaches_subscribers_in_the_sns_envelope(sns, sqs):
    # API_Publish.html: Message, Subject, MessageAttributes; sns-sqs-as-subscriber.html: without
    # raw delivery the queue gets the JSON envelope (Type, MessageId, TopicArn, Subject,
    # Message, MessageAttributes as {Type, Value}).
    arn = subscribe_queue(sns, "enveloped")
    published = sns.publish(TopicArn=TOPIC, Message="any text, not only an OrderCreated", Subject="Hello",
                            MessageAttributes={"kind": {"DataType": "String", "StringValue": "note"},
                                               "n": {"DataType": "Number", "StringValue": "1.50"}})
    url = sqs.get_queue_url(QueueName="enveloped")["QueueUrl"]
    got = receive_all(sqs, url, want=1)
    envelope = json.loads(got[0]["Body"])
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == published["MessageId"]
    assert envelope["Message"] == "any text, not only an OrderCreated"
    assert envelope["Subject"] == "Hello"
    assert envelope["MessageAttributes"] == {"kind": {"Type": "String", "Value": "note"},
                                             "n": {"Type": "Number", "Value": "1.50"}}
    # TargetArn names the topic too; MessageStructure=json delivers "default".
    sns.publish(TargetArn=TOPIC, MessageStructure="json",
                Message=json.dumps({"default": "the default", "email": "for people"}))
    got = receive_all(sqs, url, want=1)
    bare = json.loads(got[0]["Body"])
    assert bare["Message"] == "the default"
    # http-notification-json.html: Subject only "if included in the message",
    # MessageAttributes only when the message has attributes; SNS leaves both out otherwise.
    assert "Subject" not in bare and "MessageAttributes" not in bare, bare
    assert bare["TopicArn"] == TOPIC, "the envelope names the topic as ListTopics does"
    sns.unsubscribe(SubscriptionArn=arn)


def test_publish_refuses_what_sns_refuses(sns):
    # API_Publish.html: MessageStructure=json needs a "default" string; an attribute's value
    # must parse as its type (ParameterValueInvalid); "Subjects must be UTF-8 text with no line
    # breaks or control characters, and less than 100 characters long"; MessageGroupId is for
    # FIFO topics. Binary attributes are valid on SNS but refused here (ParameterValueInvalid),
    # a difference the README lists: the engine carries String and Number attributes only.
    for kwargs, code in [
        (dict(Message=json.dumps({"email": "x"}), MessageStructure="json"), "InvalidParameter"),
        (dict(Message="{not json", MessageStructure="json"), "InvalidParameter"),
        (dict(Message="x", Subject="line\nbreak"), "InvalidParameter"),
        (dict(Message="x", Subject="s" * 100), "InvalidParameter"),
        (dict(Message=""), "InvalidParameter"),
        (dict(Message="x", MessageAttributes={"n": {"DataType": "Number", "StringValue": "many"}}),
         "ParameterValueInvalid"),
        (dict(Message="x", MessageAttributes={"b": {"DataType": "Binary", "BinaryValue": b"\x00"}}),
         "ParameterValueInvalid"),
        (dict(Message="x", MessageAttributes={"AWS.reserved": {"DataType": "String", "StringValue": "v"}}),
         "ParameterValueInvalid"),
        (dict(Message="x", MessageGroupId="g"), "InvalidParameter"),
        (dict(Message="x" * 262_145), "InvalidParameter"),
    ]:
        with pytest.raises(ClientError) as e:
            sns.publish(TopicArn=TOPIC, **kwargs)
        assert error_code(e) == (code, 400), kwargs


def test_publish_batch_reports_each_entry_and_checks_the_batch(sns, sqs):
    # API_PublishBatch.html: Successful/Failed per entry; EmptyBatchRequest,
    # TooManyEntriesInBatchRequest (more than 10), BatchEntryIdsNotDistinct, InvalidBatchEntryId.
    arn = subscribe_queue(sns, "batched", RawMessageDelivery="true")
    out = sns.publish_batch(TopicArn=TOPIC, PublishBatchRequestEntries=[
        {"Id": "a", "Message": "first"},
        {"Id": "b", "Message": "bad", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "x"}}},
        {"Id": "c", "Message": "third", "Subject": "s"},
    ])
    assert sorted(s["Id"] for s in out["Successful"]) == ["a", "c"]
    assert all(s["MessageId"] for s in out["Successful"])
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in out["Failed"]] == [("b", "ParameterValueInvalid", True)]
    url = sqs.get_queue_url(QueueName="batched")["QueueUrl"]
    assert sorted(m["Body"] for m in receive_all(sqs, url, want=2)) == ["first", "third"]
    for entries, code in [
        ([{"Id": str(i), "Message": "m"} for i in range(11)], "TooManyEntriesInBatchRequest"),
        ([{"Id": "same", "Message": "m"}, {"Id": "same", "Message": "n"}], "BatchEntryIdsNotDistinct"),
        ([{"Id": "not ok!", "Message": "m"}], "InvalidBatchEntryId"),
    ]:
        with pytest.raises(ClientError) as e:
            sns.publish_batch(TopicArn=TOPIC, PublishBatchRequestEntries=entries)
        assert error_code(e) == (code, 400)
    sns.unsubscribe(SubscriptionArn=arn)


def test_an_empty_batch_is_refused(sns_server):
    # API_PublishBatch.html: EmptyBatchRequest. boto3 will not send an empty list, so the
    # request is signed by hand.
    status, body = signed_post(sns_server, {"Action": "PublishBatch", "Version": "2010-03-31", "TopicArn": TOPIC})
    assert status == 400
    assert body.find(f"{NS}Error/{NS}Code").text == "EmptyBatchRequest"


# ---------------------------------------------------------------- authentication


def signed_post(server, form, access_key="anything", secret="anything", region=REGION, sign=True, service="sns"):
    """A Query request as botocore sends it, signed with SigV4 (or not at all)."""
    data = urllib.parse.urlencode(form).encode()
    headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    if sign:
        request = AWSRequest(method="POST", url=server.url + "/", data=data, headers=headers)
        SigV4Auth(Credentials(access_key, secret), service, region).add_auth(request)
        headers = dict(request.headers.items())
    req = urllib.request.Request(server.url + "/", data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, ET.fromstring(r.read())
    except urllib.error.HTTPError as e:
        return e.code, ET.fromstring(e.read())


def test_a_form_post_without_sigv4_is_refused_even_without_an_api_key(sns_server, sns):
    # A cross-site HTML form can POST this content type without a CORS preflight
    # (https://developer.mozilla.org/en-US/docs/Web/HTTP/CORS#simple_requests) but cannot set
    # Authorization; so an unsigned request is refused with MissingAuthenticationToken
    # (CommonErrors.html) and does nothing.
    before = len(sns.list_subscriptions()["Subscriptions"])
    status, body = signed_post(sns_server, {"Action": "Subscribe", "Version": "2010-03-31", "TopicArn": TOPIC,
                                            "Protocol": "sqs", "Endpoint": queue_arn("csrf")}, sign=False)
    assert status == 403
    assert body.tag == f"{NS}ErrorResponse"
    assert body.find(f"{NS}Error/{NS}Code").text == "MissingAuthenticationToken"
    assert body.find(f"{NS}Error/{NS}Type").text == "Sender"
    assert body.find(f"{NS}RequestId").text
    assert len(sns.list_subscriptions()["Subscriptions"]) == before
    # Signed, the same request is served.
    status, body = signed_post(sns_server, {"Action": "ListTopics", "Version": "2010-03-31"})
    assert status == 200
    assert body.find(f"{NS}ListTopicsResult/{NS}Topics/{NS}member/{NS}TopicArn").text == TOPIC


def test_an_unknown_action_is_named_in_invalid_action(sns_server):
    # CommonErrors.html: InvalidAction, 400.
    status, body = signed_post(sns_server, {"Action": "DeleteTopic", "Version": "2010-03-31", "TopicArn": TOPIC})
    assert status == 400
    assert body.find(f"{NS}Error/{NS}Code").text == "InvalidAction"


@pytest.fixture(scope="module")
def keyed_sns_server():
    s = Server("--api-key", API_KEY, "--aws-access-key-id", "team-a", "--aws-account-id", "123456789012",
               "--aws-region", "eu-west-1")
    yield s
    s.stop()


def test_a_keyed_server_publishes_only_for_a_valid_signature_and_says_why_in_xml(keyed_sns_server):
    # With --api-key, requests must be signed with it (CommonErrors.html: SignatureDoesNotMatch,
    # InvalidClientTokenId, 403), answered in the Query protocol's XML.
    topic = "arn:aws:sns:eu-west-1:123456789012:POC-Topic"
    good = sns_client(keyed_sns_server, access_key="team-a", secret=API_KEY, region="eu-west-1")
    assert good.list_topics()["Topics"] == [{"TopicArn": topic}]
    assert good.publish(TopicArn=topic, Message="signed")["MessageId"]
    wrong = sns_client(keyed_sns_server, access_key="team-a", secret=API_KEY + "x", region="eu-west-1")
    with pytest.raises(ClientError) as e:
        wrong.publish(TopicArn=topic, Message="forged")
    assert error_code(e) == ("SignatureDoesNotMatch", 403)
    status, body = signed_post(keyed_sns_server, {"Action": "Publish", "Version": "2010-03-31",
                                                  "TopicArn": topic, "Message": "forged"},
                               access_key="team-a", secret="wrong", region="eu-west-1")
    assert status == 403
    assert body.tag == f"{NS}ErrorResponse"
    assert body.find(f"{NS}Error/{NS}Code").text == "SignatureDoesNotMatch"
    stranger = sns_client(keyed_sns_server, access_key="someone", secret=API_KEY, region="eu-west-1")
    with pytest.raises(ClientError) as e:
        stranger.publish(TopicArn=topic, Message="x")
    assert error_code(e) == ("InvalidClientTokenId", 403)
    # Signed for SQS, a request is not good for SNS: the credential scope names the service
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html).
    status, body = signed_post(keyed_sns_server, {"Action": "ListTopics", "Version": "2010-03-31"},
                               access_key="team-a", secret=API_KEY, region="eu-west-1", service="sqs")
    assert status == 403
    assert body.find(f"{NS}Error/{NS}Code").text == "SignatureDoesNotMatch"


# ---------------------------------------------------------------- the AWS CLI


def aws_sns(server, *args, access_key="anything", secret="anything", region=REGION):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_DEFAULT_REGION=region, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return subprocess.run([AWS, "--endpoint-url", server.url, "--output", "json", "sns", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_the_cli_lists_subscribes_publishes_and_unsubscribes(sns_server, sqs):
    # The same operations from `aws sns` (awscli), as the README shows them.
    topics = aws_sns(sns_server, "list-topics")
    assert topics.returncode == 0, topics.stderr
    assert json.loads(topics.stdout)["Topics"] == [{"TopicArn": TOPIC}]
    sub = aws_sns(sns_server, "subscribe", "--topic-arn", TOPIC, "--protocol", "sqs",
                  "--notification-endpoint", queue_arn("from-cli"),
                  "--attributes", json.dumps({"RawMessageDelivery": "true"}))
    assert sub.returncode == 0, sub.stderr
    arn = json.loads(sub.stdout)["SubscriptionArn"]
    attrs = aws_sns(sns_server, "get-subscription-attributes", "--subscription-arn", arn)
    assert json.loads(attrs.stdout)["Attributes"]["RawMessageDelivery"] == "true"
    published = aws_sns(sns_server, "publish", "--topic-arn", TOPIC, "--message", "from the cli")
    assert published.returncode == 0, published.stderr
    url = sqs.get_queue_url(QueueName="from-cli")["QueueUrl"]
    assert [m["Body"] for m in receive_all(sqs, url, want=1)] == ["from the cli"]
    listed = aws_sns(sns_server, "list-subscriptions-by-topic", "--topic-arn", TOPIC)
    assert arn in [s["SubscriptionArn"] for s in json.loads(listed.stdout)["Subscriptions"]]
    assert aws_sns(sns_server, "unsubscribe", "--subscription-arn", arn).returncode == 0
    missing = aws_sns(sns_server, "get-topic-attributes", "--topic-arn", TOPIC.replace("POC-Topic", "Nope"))
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr, missing.stderr


def test_the_cli_drives_the_http_handshake_attributes_and_batches(sns_server):
    # The rest of the operations from `aws sns`: create-topic, get-topic-attributes,
    # list-subscriptions, confirm-subscription (SendMessageToHttp.prepare.html),
    # set-subscription-attributes and publish-batch, and an error case of each kind.
    def ok(*args):
        out = aws_sns(sns_server, *args)
        assert out.returncode == 0, (args, out.stderr)
        return json.loads(out.stdout) if out.stdout.strip() else None

    assert ok("create-topic", "--name", "POC-Topic")["TopicArn"] == TOPIC
    assert ok("get-topic-attributes", "--topic-arn", TOPIC)["Attributes"]["TopicArn"] == TOPIC
    receiver = Receiver()
    try:
        arn = ok("subscribe", "--topic-arn", TOPIC, "--protocol", "http", "--notification-endpoint",
                 receiver.url, "--return-subscription-arn")["SubscriptionArn"]
        assert "PendingConfirmation" in [s["SubscriptionArn"] for s in ok("list-subscriptions")["Subscriptions"]]
        token = wait_for(lambda: receiver.of_type("SubscriptionConfirmation"))[0]["Token"]
        bad = aws_sns(sns_server, "confirm-subscription", "--topic-arn", TOPIC, "--token", "wrong")
        assert bad.returncode != 0 and "InvalidParameter" in bad.stderr, bad.stderr
        assert ok("confirm-subscription", "--topic-arn", TOPIC, "--token", token)["SubscriptionArn"] == arn
        ok("set-subscription-attributes", "--subscription-arn", arn, "--attribute-name", "RawMessageDelivery",
           "--attribute-value", "true")
        batch = ok("publish-batch", "--topic-arn", TOPIC, "--publish-batch-request-entries",
                   json.dumps([{"Id": "one", "Message": "first"}, {"Id": "two", "Message": "second"}]))
        assert sorted(e["Id"] for e in batch["Successful"]) == ["one", "two"]
        # Raw delivery to HTTP: the body is the message itself (sns-large-payload-raw-message-delivery.html).
        wait_for(lambda: len([h for h, _ in receiver.received if h.get("x-amz-sns-rawdelivery") == "true"]) == 2)
        ok("unsubscribe", "--subscription-arn", arn)
        gone = aws_sns(sns_server, "get-subscription-attributes", "--subscription-arn", arn)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stderr
    finally:
        receiver.close()


def test_the_cli_signs_with_the_api_key_and_a_wrong_secret_is_refused(keyed_sns_server):
    topic = "arn:aws:sns:eu-west-1:123456789012:POC-Topic"
    ok = aws_sns(keyed_sns_server, "publish", "--topic-arn", topic, "--message", "m",
                 access_key="team-a", secret=API_KEY, region="eu-west-1")
    assert ok.returncode == 0, ok.stderr
    bad = aws_sns(keyed_sns_server, "publish", "--topic-arn", topic, "--message", "m",
                  access_key="team-a", secret="wrong", region="eu-west-1")
    assert bad.returncode != 0
    assert "SignatureDoesNotMatch" in bad.stderr, bad.stderr
