"""boto3 (a client we did not write) drives `orderflow serve`'s SQS JSON protocol.

What each test relies on is AWS's documented behaviour:
- the JSON protocol and its errors (`__type`, `x-amzn-query-error`):
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-json-api-responses.html
- botocore turns `x-amzn-query-error: <code>;Sender` into Error.Code and keeps the shape name
  in Error.QueryErrorCode (botocore/parsers.py `_do_query_compatible_error_parse`,
  botocore/handlers.py `_handle_sqs_compatible_error`), which selects the modeled exception;
- MD5 of message attributes:
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-metadata.html#sqs-attributes-md5-message-digest-calculation
- operations and their parameters: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_Operations.html
"""

import hashlib
import json
import struct
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import Server, aws_client, error_code, order, queue_url, raw_aws_request, wait_for


def md5_of_attributes(attributes):
    """SQS's documented encoding, written independently of the server's."""
    out = b""
    for name in sorted(attributes):
        a = attributes[name]
        for part in (name.encode(), a["DataType"].encode()):
            out += struct.pack(">I", len(part)) + part
        if "BinaryValue" in a:
            out += b"\x02" + struct.pack(">I", len(a["BinaryValue"])) + a["BinaryValue"]
        else:
            v = a["StringValue"].encode()
            out += b"\x01" + struct.pack(">I", len(v)) + v
    return hashlib.md5(out).hexdigest()


# ---------------------------------------------------------------- queues


def test_list_queues_names_the_orders_queue_its_dlq_and_every_subscription_queue(server, sqs):
    urls = sqs.list_queues()["QueueUrls"]
    names = [u.rsplit("/", 1)[1] for u in urls]
    assert names == ["POC-Queue", "POC-Queue-DLQ", "audit", "audit-dlq", "scratch", "scratch-dlq",
                     "warehouse", "warehouse-dlq"]
    assert urls[0] == f"{server.url}/000000000000/POC-Queue"
    assert [u.rsplit("/", 1)[1] for u in sqs.list_queues(QueueNamePrefix="aud")["QueueUrls"]] == ["audit", "audit-dlq"]
    first = sqs.list_queues(MaxResults=4)
    assert len(first["QueueUrls"]) == 4
    rest = sqs.list_queues(MaxResults=4, NextToken=first["NextToken"])
    assert [u.rsplit("/", 1)[1] for u in rest["QueueUrls"]] == ["scratch", "scratch-dlq", "warehouse", "warehouse-dlq"]
    assert "NextToken" not in rest


def test_get_queue_url_gives_the_stable_url_of_each_queue(server, sqs):
    assert sqs.get_queue_url(QueueName="POC-Queue")["QueueUrl"] == queue_url(server, "POC-Queue")
    assert sqs.get_queue_url(QueueName="audit-dlq")["QueueUrl"] == queue_url(server, "audit-dlq")


def test_an_unknown_queue_raises_queue_does_not_exist_in_the_json_protocol_shape(server, sqs):
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as e:
        sqs.get_queue_url(QueueName="nope")
    assert error_code(e.value) == ("AWS.SimpleQueueService.NonExistentQueue", 400)
    assert e.value.response["Error"]["QueryErrorCode"] == "QueueDoesNotExist"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_attributes(QueueUrl=queue_url(server, "POC-Queue", account="123456789012"))
    # The raw response, as the AWS documentation shows it.
    status, headers, raw = raw_aws_request(server, "AmazonSQS.GetQueueUrl", b'{"QueueName": "nope"}')
    assert status == 400
    assert headers["x-amzn-query-error"] == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    assert headers["content-type"] == "application/x-amz-json-1.0"
    assert headers["x-amzn-requestid"]
    body = json.loads(raw)
    assert body["__type"] == "com.amazonaws.sqs#QueueDoesNotExist"
    assert body["message"]


def test_get_queue_attributes_reports_the_arn_counts_and_redrive_policy(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="one")
    sqs.send_message(QueueUrl=url, MessageBody="two")
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:scratch"
    assert attrs["ApproximateNumberOfMessages"] == "1"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:scratch-dlq", "maxReceiveCount": 5}
    orders = sqs.get_queue_attributes(QueueUrl=queue_url(server, "POC-Queue"), AttributeNames=["QueueArn", "RedrivePolicy"])
    assert orders["Attributes"]["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:POC-Queue"
    assert json.loads(orders["Attributes"]["RedrivePolicy"])["deadLetterTargetArn"].endswith(":POC-Queue-DLQ")
    dlq = sqs.get_queue_attributes(QueueUrl=queue_url(server, "POC-Queue-DLQ"), AttributeNames=["All"])["Attributes"]
    assert "RedrivePolicy" not in dlq
    with pytest.raises(ClientError) as e:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])
    assert error_code(e.value) == ("InvalidAttributeName", 400)
    sqs.purge_queue(QueueUrl=url)


def test_every_queue_attribute_name_sqs_defines_is_accepted_and_those_a_standard_queue_lacks_are_left_out(server, sqs):
    # GetQueueAttributes takes any QueueAttributeName of the API reference
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_GetQueueAttributes.html);
    # only a name outside that list is InvalidAttributeName. A standard queue has no FifoQueue
    # attribute, and a queue without a policy no Policy.
    url = queue_url(server, "scratch")
    names = ["QueueArn", "MessageRetentionPeriod", "CreatedTimestamp", "LastModifiedTimestamp", "Policy",
             "FifoQueue", "ContentBasedDeduplication", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
             "DeduplicationScope", "FifoThroughputLimit", "RedriveAllowPolicy", "SqsManagedSseEnabled"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    assert attrs["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:scratch"
    assert "FifoQueue" not in attrs and "Policy" not in attrs
    assert set(attrs) <= set(names)


# ---------------------------------------------------------------- sending into the pipeline


def test_an_order_sent_to_poc_queue_is_stored_and_announced_like_one_from_the_api(server, sqs):
    audit = queue_url(server, "audit")
    order_id = "sqs-" + uuid.uuid4().hex[:12]
    sent = sqs.send_message(QueueUrl=queue_url(server, "POC-Queue"), MessageBody=json.dumps(order(order_id)),
                            MessageAttributes={"source": {"DataType": "String", "StringValue": "boto3"}})
    assert sent["MD5OfMessageBody"] == hashlib.md5(json.dumps(order(order_id)).encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == md5_of_attributes({"source": {"DataType": "String", "StringValue": "boto3"}})
    stored = wait_for(lambda: (lambda r: r[1] if r[0] == 200 else None)(server.http("GET", f"/orders/{order_id}")))
    assert stored["orderID"] == order_id
    def announced():
        got = sqs.receive_message(QueueUrl=audit, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=audit, ReceiptHandle=m["ReceiptHandle"])
        return [m for m in got if order_id in m["Body"]]
    assert wait_for(announced)


def test_a_batch_of_orders_is_stored_and_a_malformed_one_ends_in_the_dead_letter_queue(server, sqs):
    ids = ["sqsb-" + uuid.uuid4().hex[:10] for _ in range(2)]
    bad = "not an order " + uuid.uuid4().hex
    result = sqs.send_message_batch(QueueUrl=queue_url(server, "POC-Queue"), Entries=[
        {"Id": "a", "MessageBody": json.dumps(order(ids[0]))},
        {"Id": "b", "MessageBody": json.dumps(order(ids[1]))},
        {"Id": "bad", "MessageBody": bad},
    ])
    assert sorted(e["Id"] for e in result["Successful"]) == ["a", "b", "bad"]
    assert result.get("Failed", []) == []
    for i in ids:
        wait_for(lambda: server.http("GET", f"/orders/{i}")[0] == 200)
    # The store handler fails it on each receive; after --max-receive-count it is dead.
    dlq = queue_url(server, "POC-Queue-DLQ")
    def dead():
        got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  MessageSystemAttributeNames=["ApproximateReceiveCount",
                                                               "DeadLetterQueueSourceArn"]).get("Messages", [])
        return [m for m in got if m["Body"] == bad]
    message = wait_for(dead)[0]
    # The redrive policy moved it: it names the orders queue as its source (API_ReceiveMessage.html).
    assert message["Attributes"]["DeadLetterQueueSourceArn"] == "arn:aws:sqs:us-east-1:000000000000:POC-Queue"
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])


def test_batch_entries_are_checked_as_sqs_checks_them(server, sqs):
    url = queue_url(server, "scratch")
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.send_message_batch(QueueUrl=url, Entries=[])
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)])
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}])
    with pytest.raises(sqs.exceptions.InvalidBatchEntryId):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "no spaces", "MessageBody": "x"}])
    with pytest.raises(sqs.exceptions.InvalidMessageContents):
        sqs.send_message(QueueUrl=url, MessageBody="bad \x01 char")


def test_string_number_and_binary_attributes_round_trip_with_matching_md5s(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    attributes = {
        "customer": {"DataType": "String", "StringValue": "c-1 ü"},
        "total": {"DataType": "Number", "StringValue": "12.50"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
        "trace.id": {"DataType": "String.custom", "StringValue": "t"},
    }
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello", MessageAttributes=attributes)
    assert sent["MD5OfMessageAttributes"] == md5_of_attributes(attributes)
    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"][0]
    assert got["MD5OfBody"] == hashlib.md5(b"hello").hexdigest()
    assert got["MessageAttributes"] == attributes
    assert got["MD5OfMessageAttributes"] == md5_of_attributes(attributes)
    assert got["MessageId"] == sent["MessageId"]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=got["ReceiptHandle"], VisibilityTimeout=0)
    only = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["trace.*", "total"])["Messages"][0]
    assert set(only["MessageAttributes"]) == {"trace.id", "total"}
    assert only["MD5OfMessageAttributes"] == md5_of_attributes({k: attributes[k] for k in ("trace.id", "total")})
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=only["ReceiptHandle"], VisibilityTimeout=0)
    plain = sqs.receive_message(QueueUrl=url)["Messages"][0]
    assert "MessageAttributes" not in plain and "MD5OfMessageAttributes" not in plain
    sqs.purge_queue(QueueUrl=url)


def test_a_batch_is_measured_by_its_binary_values_bytes_not_their_base64(server, sqs):
    # The 256 KiB limit counts a message's body and attributes' name, type and value
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html);
    # a binary value is bytes, which the JSON protocol carries as base64, a third longer.
    # Ten entries with 24,000-byte binary values are 240,000 bytes (32,000 in base64 each).
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    blob = {"blob": {"DataType": "Binary", "BinaryValue": b"\xff" * 24_000}}
    result = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": str(i), "MessageBody": "x", "MessageAttributes": blob} for i in range(10)])
    assert len(result["Successful"]) == 10
    with pytest.raises(sqs.exceptions.BatchRequestTooLong):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": "x" * 2_300, "MessageAttributes": blob} for i in range(10)])
    sqs.purge_queue(QueueUrl=url)


def test_an_attribute_value_must_be_non_empty_and_hold_only_the_characters_a_body_may(server, sqs):
    # "Name, type, value and the message body must not be empty or null", and a string
    # value "has the same restrictions on the content as the message body"
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html);
    # moto answers InvalidParameterValue for an empty one too (moto/sqs/utils.py).
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    for bad in ({"DataType": "String", "StringValue": ""},
                {"DataType": "Number", "StringValue": ""},
                {"DataType": "Binary", "BinaryValue": b""},
                {"DataType": "String", "StringValue": "bell \x07"}):
        with pytest.raises(ClientError) as e:
            sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={"a": bad})
        assert error_code(e.value) == ("InvalidParameterValue", 400), bad
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_a_delay_outside_0_to_900_seconds_is_an_invalid_parameter_value(server, sqs):
    # "DelaySeconds ... Valid values: 0 to 900"
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html);
    # the error names the parameter, as moto's does (moto/sqs/models.py).
    url = queue_url(server, "scratch")
    for delay in (-1, 901):
        with pytest.raises(ClientError) as e:
            sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=delay)
        assert error_code(e.value) == ("InvalidParameterValue", 400), delay
        assert "DelaySeconds must be >= 0 and <= 900" in e.value.response["Error"]["Message"]


def test_an_x_ray_trace_header_is_accepted_and_digested_as_sqs_digests_system_attributes(server, sqs):
    # SendMessage(Batch) takes MessageSystemAttributes, of which AWSTraceHeader (a String)
    # is the only one, and answers MD5OfMessageSystemAttributes, "an MD5 digest of the
    # non-URL-encoded message system attribute string", encoded as message attributes are
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html).
    # X-Ray-instrumented producers send it on every message.
    url = queue_url(server, "scratch")
    trace = {"AWSTraceHeader": {"DataType": "String",
                                "StringValue": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="traced", MessageSystemAttributes=trace)
    assert sent["MD5OfMessageSystemAttributes"] == md5_of_attributes(trace)
    assert "MD5OfMessageAttributes" not in sent
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "t", "MessageBody": "traced", "MessageSystemAttributes": trace},
        {"Id": "u", "MessageBody": "untraced"},
    ])
    by_id = {e["Id"]: e for e in batch["Successful"]}
    assert by_id["t"]["MD5OfMessageSystemAttributes"] == md5_of_attributes(trace)
    assert "MD5OfMessageSystemAttributes" not in by_id["u"]
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageSystemAttributes={
            "AWSTraceHeader": {"DataType": "Number", "StringValue": "1"}})
    assert error_code(e.value) == ("InvalidParameterValue", 400)
    sqs.purge_queue(QueueUrl=url)


def test_the_orders_queue_refuses_non_string_attributes_the_store_handler_cannot_read(server, sqs):
    with pytest.raises(ClientError) as e:
        sqs.send_message(QueueUrl=queue_url(server, "POC-Queue"), MessageBody="{}",
                         MessageAttributes={"n": {"DataType": "Number", "StringValue": "1"}})
    assert error_code(e.value) == ("InvalidParameterValue", 400)


# ---------------------------------------------------------------- receiving


def test_receive_long_polls_until_a_message_arrives(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    started = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert time.monotonic() - started >= 0.9
    threading.Timer(0.7, lambda: server.client().send_message(QueueUrl=url, MessageBody="late")).start()
    started = time.monotonic()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)
    took = time.monotonic() - started
    assert [m["Body"] for m in got["Messages"]] == ["late"]
    assert 0.5 < took < 5, took
    sqs.purge_queue(QueueUrl=url)


def test_a_dead_letter_queue_long_polls_too(server, sqs):
    url = queue_url(server, "scratch-dlq")
    threading.Timer(0.5, lambda: server.client().send_message(QueueUrl=url, MessageBody="dead")).start()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
    assert [m["Body"] for m in got["Messages"]] == ["dead"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got["Messages"][0]["ReceiptHandle"])


def test_max_number_of_messages_and_the_system_attributes_asked_for(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    before = int(time.time() * 1000)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"n{i}"} for i in range(3)])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                              MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])["Messages"]
    assert len(got) == 10
    for m in got:
        assert set(m["Attributes"]) == {"ApproximateReceiveCount", "SentTimestamp"}
        assert m["Attributes"]["ApproximateReceiveCount"] == "1"
        assert before - 1000 <= int(m["Attributes"]["SentTimestamp"]) <= int(time.time() * 1000)
    legacy = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, AttributeNames=["All"])["Messages"]
    assert len(legacy) == 3
    assert {"ApproximateReceiveCount", "SentTimestamp", "ApproximateFirstReceiveTimestamp", "SenderId"} <= set(legacy[0]["Attributes"])
    with pytest.raises(ClientError) as e:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert error_code(e.value) == ("InvalidParameterValue", 400)
    sqs.purge_queue(QueueUrl=url)


def test_concurrent_consumers_never_receive_the_same_message_while_it_is_invisible(server):
    # "Immediately after a message is received, it remains in the queue. To prevent other
    # consumers from processing the message again, Amazon SQS sets a visibility timeout"
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html).
    # Four consumers with clients of their own race for 40 messages, hidden for a minute.
    url = queue_url(server, "scratch")
    server.client().purge_queue(QueueUrl=url)
    producer = server.client()
    for batch in range(4):
        producer.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f"c{batch}-{i}"} for i in range(10)])
    seen, lock = [], threading.Lock()

    def consume():
        sqs = server.client()
        for _ in range(20):  # bounded: 40 messages need at most 40 receives in all
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=60).get("Messages", [])
            if not got:
                return
            with lock:
                seen.extend(m["MessageId"] for m in got)

    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for t in consumers:
        t.start()
    for t in consumers:
        t.join(timeout=30)
    assert len(seen) == 40
    assert len(set(seen)) == 40
    producer.purge_queue(QueueUrl=url)


def test_a_message_not_deleted_reappears_after_its_visibility_timeout_with_a_higher_receive_count(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="again")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"][0]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    second = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    sqs.purge_queue(QueueUrl=url)


# ---------------------------------------------------------------- deleting, visibility, purging


def test_delete_message_removes_it_and_a_malformed_receipt_handle_is_invalid(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="bye")
    m = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid) as e:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")
    assert error_code(e.value) == ("ReceiptHandleIsInvalid", 400)


def test_a_receipt_handle_is_only_one_this_queue_issued(server, sqs):
    # A receipt handle belongs to one receive from one queue; anything else, a handle of
    # another queue or a message id passed by mistake, is ReceiptHandleIsInvalid
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_DeleteMessage.html;
    # moto raises it too for a handle the queue never issued, moto/sqs/models.py
    # Queue.delete_message). Only the queue's own stale handle "succeeds, but the message
    # might not be deleted".
    url, other = queue_url(server, "scratch"), queue_url(server, "warehouse")
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="mine")
    m = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"][0]
    for wrong_queue in (
        lambda: sqs.delete_message(QueueUrl=other, ReceiptHandle=m["ReceiptHandle"]),
        lambda: sqs.change_message_visibility(QueueUrl=other, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0),
        lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=m["MessageId"]),
        lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle=str(uuid.uuid4())),
    ):
        with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
            wrong_queue()
    batch = sqs.delete_message_batch(QueueUrl=other, Entries=[{"Id": "x", "ReceiptHandle": m["ReceiptHandle"]}])
    assert [(f["Id"], f["Code"]) for f in batch["Failed"]] == [("x", "ReceiptHandleIsInvalid")]
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
    # The queue's own handle, stale once the message is received again, deletes nothing.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
    sqs.delete_message(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"])
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_delete_message_batch_reports_each_entry(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "a"}, {"Id": "2", "MessageBody": "b"}])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    assert len(got) == 2
    result = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "x", "ReceiptHandle": got[0]["ReceiptHandle"]},
        {"Id": "y", "ReceiptHandle": got[1]["ReceiptHandle"]},
        {"Id": "z", "ReceiptHandle": "garbage"},
    ])
    assert sorted(e["Id"] for e in result["Successful"]) == ["x", "y"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in result["Failed"]] == [("z", "ReceiptHandleIsInvalid", True)]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")


def test_change_message_visibility_hides_or_releases_an_in_flight_message(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="vis")
    m = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"][0]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"][0]
    assert again["MessageId"] == m["MessageId"]
    # The first receipt is no longer the message's.
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=5)
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=0)
    with pytest.raises(sqs.exceptions.MessageNotInflight):
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again["ReceiptHandle"], VisibilityTimeout=5)
    sqs.purge_queue(QueueUrl=url)


def test_visibility_cannot_be_extended_past_twelve_hours_from_the_receive(server, sqs):
    # "You can continue to call ChangeMessageVisibility to extend the visibility timeout to
    # the maximum allowed time. If you try to extend the visibility timeout beyond the
    # maximum, your request is rejected." (12 hours;
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html)
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="heartbeat")
    m = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"][0]
    time.sleep(1.2)
    with pytest.raises(ClientError) as e:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=43200)
    assert error_code(e.value) == ("InvalidParameterValue", 400)
    batch = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 43200}])
    assert [(f["Id"], f["Code"]) for f in batch["Failed"]] == [("a", "InvalidParameterValue")]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=43000)
    sqs.purge_queue(QueueUrl=url)


def test_change_message_visibility_batch_reports_each_entry(server, sqs):
    url = queue_url(server, "scratch")
    sqs.purge_queue(QueueUrl=url)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "a"}, {"Id": "2", "MessageBody": "b"}])
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)["Messages"]
    result = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "p", "ReceiptHandle": got[0]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "q", "ReceiptHandle": got[1]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "r", "ReceiptHandle": "garbage", "VisibilityTimeout": 0},
    ])
    assert sorted(e["Id"] for e in result["Successful"]) == ["p", "q"]
    assert [(f["Id"], f["Code"]) for f in result["Failed"]] == [("r", "ReceiptHandleIsInvalid")]
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]) == 2
    sqs.purge_queue(QueueUrl=url)


def test_purge_queue_deletes_visible_and_in_flight_messages_but_not_the_dead_letters(server, sqs):
    url, dlq = queue_url(server, "scratch"), queue_url(server, "scratch-dlq")
    sqs.send_message(QueueUrl=url, MessageBody="a")
    sqs.send_message(QueueUrl=url, MessageBody="b")
    sqs.send_message(QueueUrl=dlq, MessageBody="dead")
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=60)
    sqs.purge_queue(QueueUrl=url)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")
    assert sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"] == {
        "ApproximateNumberOfMessages": "1"}
    sqs.purge_queue(QueueUrl=dlq)


def test_a_second_purge_of_a_queue_within_sixty_seconds_is_purge_queue_in_progress():
    # One PurgeQueue a queue every 60 seconds; another is PurgeQueueInProgress
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_PurgeQueue.html,
    # which says HTTP 400; SQS itself answers 403 with this message, as a real answer in
    # https://github.com/aws/aws-sdk-js-v3/issues/5558 shows, and moto answers 403 too).
    # boto3 raises the modeled exception (its code is the query-compatible
    # AWS.SimpleQueueService.PurgeQueueInProgress). The session's server lets every purge
    # through (--sqs-purge-interval-ms 0), so this one runs with the default.
    s = Server()
    try:
        sqs = s.client()
        orders, dlq = queue_url(s, "POC-Queue"), queue_url(s, "POC-Queue-DLQ")
        sqs.purge_queue(QueueUrl=orders)
        with pytest.raises(sqs.exceptions.PurgeQueueInProgress) as e:
            sqs.purge_queue(QueueUrl=orders)
        assert error_code(e.value) == ("AWS.SimpleQueueService.PurgeQueueInProgress", 403)
        assert e.value.response["Error"]["Message"] == (
            "Only one PurgeQueue operation on POC-Queue is allowed every 60 seconds.")
        sqs.purge_queue(QueueUrl=dlq)
    finally:
        s.stop()


# ---------------------------------------------------------------- the listener's other rules


def test_aws_answers_carry_no_allow_header(server):
    # An AWS answer carries the service's headers; `Allow` belongs on a 405 (RFC 9110
    # section 10.2.1), which none of these is. It used to leak from the portal's GET-only `/`.
    answers = [
        aws_client(server, "sqs").list_queues(),
        aws_client(server, "dynamodb").list_tables(),
        aws_client(server, "dynamodbstreams").list_streams(),
        aws_client(server, "sns").list_topics(),
    ]
    for answer in answers:
        headers = answer["ResponseMetadata"]["HTTPHeaders"]
        assert "allow" not in headers, headers
    status, headers, _ = raw_aws_request(server, "AmazonSQS.NoSuchOperation")
    assert status == 400 and "allow" not in headers, headers


def test_an_aws_request_for_another_host_name_is_refused_by_the_host_check(server):
    status, _, _ = raw_aws_request(server, "AmazonSQS.ListQueues", headers={"host": "rebind.attacker.example"})
    assert status == 421


def test_an_operation_not_served_yet_is_named_in_an_unsupported_operation_error(server, sqs):
    with pytest.raises(sqs.exceptions.UnsupportedOperation) as e:
        sqs.create_queue(QueueName="new")
    assert "CreateQueue" in e.value.response["Error"]["Message"]


# ---------------------------------------------------------------- dead-letter redrive


def test_a_dead_letter_queue_names_its_source_queue(server, sqs):
    sources = sqs.list_dead_letter_source_queues(QueueUrl=queue_url(server, "POC-Queue-DLQ"))["queueUrls"]
    assert sources == [queue_url(server, "POC-Queue")]
    assert sqs.list_dead_letter_source_queues(QueueUrl=queue_url(server, "audit-dlq"))["queueUrls"] == [
        queue_url(server, "audit")]
    assert sqs.list_dead_letter_source_queues(QueueUrl=queue_url(server, "audit"))["queueUrls"] == []


def test_a_dead_letter_names_its_source_queue_arn_and_a_message_sent_to_the_dlq_has_none(server, sqs):
    # ReceiveMessage's MessageSystemAttributeNames: "DeadLetterQueueSourceArn - Returns the
    # source queue ARN of the message that was moved to the dead-letter queue"; `All` returns
    # every one, and the deprecated AttributeNames names them as well.
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
    url, dlq = queue_url(server, "scratch"), queue_url(server, "scratch-dlq")
    sqs.purge_queue(QueueUrl=url)
    sqs.purge_queue(QueueUrl=dlq)
    source_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])[
        "Attributes"]["RedrivePolicy"])
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(policy["maxReceiveCount"]):
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]] == ["poison"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url), "past maxReceiveCount it moves to the DLQ"
    sqs.send_message(QueueUrl=dlq, MessageBody="sent straight")

    def received(**names):
        got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=0, **names)["Messages"]
        return {m["Body"]: m.get("Attributes", {}) for m in got}

    by_name = received(MessageSystemAttributeNames=["DeadLetterQueueSourceArn"])
    assert by_name == {"poison": {"DeadLetterQueueSourceArn": source_arn}, "sent straight": {}}
    every = received(MessageSystemAttributeNames=["All"])
    assert every["poison"]["DeadLetterQueueSourceArn"] == source_arn
    assert "DeadLetterQueueSourceArn" not in every["sent straight"]
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId"} <= set(every["sent straight"])
    legacy = received(AttributeNames=["DeadLetterQueueSourceArn"])
    assert legacy == {"poison": {"DeadLetterQueueSourceArn": source_arn}, "sent straight": {}}

    # Moved back to its source, neither reads as a dead letter there (the source queue has no
    # source of its own; the engine test
    # queue::tests::a_dead_lettered_message_names_the_queue_it_came_from_until_it_is_redriven
    # checks the move back clears what it stored).
    sqs.start_message_move_task(SourceArn="arn:aws:sqs:us-east-1:000000000000:scratch-dlq")
    back = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])["Messages"]
    assert sorted(m["Body"] for m in back) == ["poison", "sent straight"]
    assert all("DeadLetterQueueSourceArn" not in m["Attributes"] for m in back), back
    sqs.purge_queue(QueueUrl=url)


def test_a_message_move_task_puts_dead_letters_back_on_their_source_queue(server, sqs):
    url, dlq = queue_url(server, "scratch"), queue_url(server, "scratch-dlq")
    sqs.purge_queue(QueueUrl=url)
    sqs.purge_queue(QueueUrl=dlq)
    sqs.send_message_batch(QueueUrl=dlq, Entries=[{"Id": "1", "MessageBody": "d1"}, {"Id": "2", "MessageBody": "d2"}])
    arn = "arn:aws:sqs:us-east-1:000000000000:scratch-dlq"
    handle = sqs.start_message_move_task(SourceArn=arn)["TaskHandle"]
    tasks = sqs.list_message_move_tasks(SourceArn=arn)["Results"]
    assert tasks[0]["TaskHandle"] == handle
    assert tasks[0]["Status"] == "COMPLETED"
    assert tasks[0]["DestinationArn"] == "arn:aws:sqs:us-east-1:000000000000:scratch"
    assert tasks[0]["ApproximateNumberOfMessagesMoved"] == 2
    bodies = sorted(m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"])
    assert bodies == ["d1", "d2"]
    with pytest.raises(ClientError) as e:
        sqs.start_message_move_task(SourceArn="arn:aws:sqs:us-east-1:000000000000:scratch")
    assert error_code(e.value) == ("InvalidParameterValue", 400)
    with pytest.raises(sqs.exceptions.ResourceNotFoundException):
        sqs.list_message_move_tasks(SourceArn="arn:aws:sqs:us-east-1:000000000000:nope")
    sqs.purge_queue(QueueUrl=url)
