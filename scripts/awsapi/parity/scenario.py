"""One scenario of every AWS operation `orderflow serve` answers (issue 16), run with boto3
against any endpoint: moto or `orderflow serve`. Each step is recorded by its shape
(shapes.record), so two runs can be compared.

On moto the scenario first creates what `orderflow serve` holds from the start: the orders
queue `POC-Queue` and its dead-letter queue (redrive after `MAX_RECEIVE_COUNT` receives), the
table `orders` (key `orderID`) with a `NEW_IMAGE` stream, and the topic `POC-Topic`. Serve
runs first: the order the scenario sends to `POC-Queue` is stored by its pipeline, and moto
gets that same item with a PutItem, so the two streams carry the same image.

Run it by hand to see today's differences (the format of known_differences.json):
    .venv-awsapi/bin/python scripts/awsapi/parity/scenario.py MOTO_URL SERVE_URL
"""

import json
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

import shapes

REGION = "us-east-1"
MAX_RECEIVE_COUNT = 3
ORDERS_QUEUE = "POC-Queue"
ORDERS_DLQ = "POC-Queue-DLQ"
TABLE = "orders"
TOPIC = "POC-Topic"
SUBSCRIBER_QUEUE = "parity-subscriber"

ORDER = {
    "orderID": "ord-parity-1",
    "customerId": "c-parity",
    "customerEmail": "parity@example.com",
    "items": [{"sku": "A-1", "quantity": 2, "unitPrice": 1.5}],
    "currency": "EUR",
    "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
}

# Every message of the working queue carries the same attributes, so whichever one a receive
# returns, the response has the same shape. String only: the orders queue and its DLQ (which
# redrives into it) take only what the store handler can read.
ATTRIBUTES = {
    "kind": {"DataType": "String", "StringValue": "parity"},
    "trace": {"DataType": "String", "StringValue": "t-1"},
}


def clients(endpoint_url):
    """boto3 clients as a downstream team configures them: an endpoint, a region, any
    credentials (neither server here has an API key), no retries that would hide an error."""
    session = boto3.session.Session(aws_access_key_id="parity", aws_secret_access_key="parity",
                                    region_name=REGION)
    config = Config(retries={"max_attempts": 1})
    return {name: session.client(name, endpoint_url=endpoint_url, config=config)
            for name in ("sqs", "dynamodb", "dynamodbstreams", "sns")}


class Run:
    """Calls operations and keeps each step's record."""

    def __init__(self, aws):
        self.aws = aws
        self.records = []

    def call(self, step, service, operation, **params):
        """The response (or None after an error), recorded under `step`."""
        try:
            response = getattr(self.aws[service], operation)(**params)
        except ClientError as e:
            self.records.append(shapes.record(step, {
                "error": e.response["Error"]["Code"],
                "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}))
            return None
        status = response.pop("ResponseMetadata")["HTTPStatusCode"]
        self.records.append(shapes.record(step, {"response": with_json_bodies(response), "status": status}))
        return response


def with_json_bodies(response):
    """A copy of a ReceiveMessage response whose JSON message bodies (an SNS envelope, an
    event) are parsed, so their shape is compared too."""
    if "Messages" not in response:
        return response
    messages = []
    for m in response["Messages"]:
        try:
            body = json.loads(m["Body"])
        except ValueError:
            body = m["Body"]
        messages.append(dict(m, Body=body))
    return dict(response, Messages=messages)


def create_moto_resources(aws):
    """What `orderflow serve` holds from the start, made on moto."""
    sqs = aws["sqs"]
    dlq = sqs.create_queue(QueueName=ORDERS_DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(QueueName=ORDERS_QUEUE, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})})
    aws["sns"].create_topic(Name=TOPIC)
    aws["dynamodb"].create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "orderID", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "orderID", "KeyType": "HASH"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})


def sqs_steps(run):
    """Every SQS operation of issue 16, and its documented errors. Messages are worked on in
    the dead-letter queue: on `orderflow serve` the store handler consumes `POC-Queue`."""
    r = run.call
    r("ListQueues", "sqs", "list_queues")
    r("ListQueues paginated", "sqs", "list_queues", QueueNamePrefix="POC", MaxResults=1)
    orders = r("GetQueueUrl", "sqs", "get_queue_url", QueueName=ORDERS_QUEUE)["QueueUrl"]
    dlq = run.aws["sqs"].get_queue_url(QueueName=ORDERS_DLQ)["QueueUrl"]
    r("GetQueueUrl of an unknown queue", "sqs", "get_queue_url", QueueName="no-such-queue")
    r("GetQueueAttributes All of the orders queue", "sqs", "get_queue_attributes", QueueUrl=orders,
      AttributeNames=["All"])
    dlq_arn = r("GetQueueAttributes QueueArn of the DLQ", "sqs", "get_queue_attributes", QueueUrl=dlq,
                AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    orders_arn = run.aws["sqs"].get_queue_attributes(
        QueueUrl=orders, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    r("GetQueueAttributes of an unknown attribute", "sqs", "get_queue_attributes", QueueUrl=orders,
      AttributeNames=["NoSuchAttribute"])

    r("SendMessage of an order", "sqs", "send_message", QueueUrl=orders, MessageBody=json.dumps(ORDER),
      MessageAttributes={"source": {"DataType": "String", "StringValue": "parity"}})
    r("SendMessage with attributes", "sqs", "send_message", QueueUrl=dlq,
      MessageBody="one", MessageAttributes=ATTRIBUTES)
    r("SendMessageBatch", "sqs", "send_message_batch", QueueUrl=dlq, Entries=[
        {"Id": "two", "MessageBody": "two", "MessageAttributes": ATTRIBUTES},
        {"Id": "three", "MessageBody": "three", "MessageAttributes": ATTRIBUTES}])
    r("SendMessageBatch without entries", "sqs", "send_message_batch", QueueUrl=dlq, Entries=[])
    r("SendMessageBatch with a repeated id", "sqs", "send_message_batch", QueueUrl=dlq, Entries=[
        {"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}])
    r("SendMessage to an unknown queue", "sqs", "send_message",
      QueueUrl=orders.replace(ORDERS_QUEUE, "no-such-queue"), MessageBody="x")

    first = r("ReceiveMessage with attributes and system attributes", "sqs", "receive_message", QueueUrl=dlq,
              MaxNumberOfMessages=1, VisibilityTimeout=60, MessageAttributeNames=["All"],
              MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"])["Messages"][0]
    r("ChangeMessageVisibility", "sqs", "change_message_visibility", QueueUrl=dlq,
      ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    r("ChangeMessageVisibility of a message not in flight", "sqs", "change_message_visibility", QueueUrl=dlq,
      ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=5)
    every = r("ReceiveMessage of ten, long polling", "sqs", "receive_message", QueueUrl=dlq,
              MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=1)["Messages"]
    r("ChangeMessageVisibilityBatch", "sqs", "change_message_visibility_batch", QueueUrl=dlq, Entries=[
        {"Id": "ok", "ReceiptHandle": every[0]["ReceiptHandle"], "VisibilityTimeout": 60},
        {"Id": "bad", "ReceiptHandle": "garbage", "VisibilityTimeout": 60}])
    r("DeleteMessage", "sqs", "delete_message", QueueUrl=dlq, ReceiptHandle=every[0]["ReceiptHandle"])
    r("DeleteMessage with a malformed receipt handle", "sqs", "delete_message", QueueUrl=dlq,
      ReceiptHandle="garbage")
    r("DeleteMessageBatch", "sqs", "delete_message_batch", QueueUrl=dlq, Entries=[
        {"Id": "ok", "ReceiptHandle": every[1]["ReceiptHandle"]},
        {"Id": "bad", "ReceiptHandle": "garbage"}])
    r("ReceiveMessage more than ten", "sqs", "receive_message", QueueUrl=dlq, MaxNumberOfMessages=11)
    r("PurgeQueue", "sqs", "purge_queue", QueueUrl=dlq)
    # One purge a queue every 60 seconds (API_PurgeQueue.html): PurgeQueueInProgress.
    r("PurgeQueue again within 60 seconds", "sqs", "purge_queue", QueueUrl=dlq)
    r("ReceiveMessage of an empty queue", "sqs", "receive_message", QueueUrl=dlq, WaitTimeSeconds=0)

    r("ListDeadLetterSourceQueues", "sqs", "list_dead_letter_source_queues", QueueUrl=dlq)
    run.aws["sqs"].send_message(QueueUrl=dlq, MessageBody="dead", MessageAttributes=ATTRIBUTES)
    r("StartMessageMoveTask", "sqs", "start_message_move_task", SourceArn=dlq_arn)
    r("ListMessageMoveTasks", "sqs", "list_message_move_tasks", SourceArn=dlq_arn)
    r("StartMessageMoveTask from a queue that is no DLQ", "sqs", "start_message_move_task", SourceArn=orders_arn)


# An order as the store handler writes it (the item shape of crates/core/src/item.rs).
ITEM = {
    "orderID": {"S": "ord-parity-ddb"},
    "customerId": {"S": "c-parity"},
    "customerEmail": {"S": "parity@example.com"},
    "items": {"L": [{"M": {"sku": {"S": "A-1"}, "quantity": {"N": "2"}, "unitPrice": {"N": "1.5"}}}]},
    "currency": {"S": "EUR"},
    "shippingAddress": {"M": {"line1": {"S": "1 Main St"}, "city": {"S": "Berlin"}, "postalCode": {"S": "10115"},
                              "country": {"S": "DE"}}},
    "status": {"S": "STORED"},
    "total": {"N": "3"},
    "receivedAt": {"S": "2026-11-29T12:00:00.000Z"},
    "storedAt": {"S": "2026-11-29T12:00:00.100Z"},
}


def dynamodb_steps(run):
    """Every DynamoDB operation of issue 16 on `orders`, and its documented errors."""
    r = run.call
    key = {"orderID": ITEM["orderID"]}
    missing = {"orderID": {"S": "ord-parity-missing"}}
    r("DescribeTable", "dynamodb", "describe_table", TableName=TABLE)
    r("DescribeTable of an unknown table", "dynamodb", "describe_table", TableName="no-such-table")
    # What store-orders sends (crates/aws/src/table.rs).
    put = {"TableName": TABLE, "Item": ITEM, "ConditionExpression": "attribute_not_exists(orderID)",
           "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    r("PutItem of a new order", "dynamodb", "put_item", **put)
    r("PutItem of a taken orderID", "dynamodb", "put_item", **put)
    r("PutItem into an unknown table", "dynamodb", "put_item", **dict(put, TableName="no-such-table"))
    r("GetItem", "dynamodb", "get_item", TableName=TABLE, Key=key, ConsistentRead=True)
    r("GetItem of a missing order", "dynamodb", "get_item", TableName=TABLE, Key=missing)
    r("GetItem by an attribute that is not the key", "dynamodb", "get_item", TableName=TABLE,
      Key={"customerId": {"S": "c-parity"}})
    r("BatchGetItem", "dynamodb", "batch_get_item", RequestItems={TABLE: {"Keys": [key, missing]}})
    r("Query on the key", "dynamodb", "query", TableName=TABLE, KeyConditionExpression="orderID = :id",
      ExpressionAttributeValues={":id": ITEM["orderID"]})
    # A second order, so a one-item page has more after it on both servers.
    second = dict(ITEM, orderID={"S": "ord-parity-ddb-2"})
    run.aws["dynamodb"].put_item(**dict(put, Item=second))
    first = r("Scan of one item", "dynamodb", "scan", TableName=TABLE, Limit=1)
    r("Scan from LastEvaluatedKey", "dynamodb", "scan", TableName=TABLE,
      ExclusiveStartKey=first["LastEvaluatedKey"])


def sns_steps(run, on_moto):
    """Every SNS operation of issue 16 on `POC-Topic`, and its documented errors. The `sqs`
    subscription names a queue ARN in the topic's account: on serve that makes it a queue
    subscription, on moto the queue is created first."""
    r = run.call
    topics = r("ListTopics", "sns", "list_topics")["Topics"]
    topic = next(t["TopicArn"] for t in topics if t["TopicArn"].endswith(":" + TOPIC))
    unknown_topic = topic[: -len(TOPIC)] + "no-such-topic"
    queue_arn = topic.replace(":sns:", ":sqs:")[: -len(TOPIC)] + SUBSCRIBER_QUEUE
    if on_moto:
        run.aws["sqs"].create_queue(QueueName=SUBSCRIBER_QUEUE)
    r("GetTopicAttributes", "sns", "get_topic_attributes", TopicArn=topic)
    r("GetTopicAttributes of an unknown topic", "sns", "get_topic_attributes", TopicArn=unknown_topic)
    sub = r("Subscribe sqs with a filter policy", "sns", "subscribe", TopicArn=topic, Protocol="sqs",
            Endpoint=queue_arn, ReturnSubscriptionArn=True,
            Attributes={"FilterPolicy": json.dumps({"eventType": ["OrderCreated"]}),
                        "FilterPolicyScope": "MessageAttributes"})["SubscriptionArn"]
    http = r("Subscribe http", "sns", "subscribe", TopicArn=topic, Protocol="http",
             Endpoint="http://subscriber.example.com/sns")["SubscriptionArn"]
    https = r("Subscribe https", "sns", "subscribe", TopicArn=topic, Protocol="https",
              Endpoint="https://subscriber.example.com/sns", ReturnSubscriptionArn=True)["SubscriptionArn"]
    r("Subscribe email", "sns", "subscribe", TopicArn=topic, Protocol="email", Endpoint="ops@example.com")
    r("Subscribe with an unknown protocol", "sns", "subscribe", TopicArn=topic, Protocol="carrier-pigeon",
      Endpoint="coop-1")
    r("Subscribe to an unknown topic", "sns", "subscribe", TopicArn=unknown_topic, Protocol="email",
      Endpoint="ops@example.com")
    r("ListSubscriptions", "sns", "list_subscriptions")
    r("ListSubscriptionsByTopic", "sns", "list_subscriptions_by_topic", TopicArn=topic)
    r("GetSubscriptionAttributes", "sns", "get_subscription_attributes", SubscriptionArn=sub)
    # Before publishing: moto posts to an https endpoint synchronously, and there is no network.
    r("Unsubscribe of a pending subscription", "sns", "unsubscribe", SubscriptionArn=https)
    r("Unsubscribe with what Subscribe http answered", "sns", "unsubscribe", SubscriptionArn=http)
    r("ConfirmSubscription with a token SNS did not send", "sns", "confirm_subscription", TopicArn=topic,
      Token="0" * 64)
    attributes = {"eventType": {"DataType": "String", "StringValue": "OrderCreated"},
                  "total": {"DataType": "Number", "StringValue": "3"}}
    url = run.aws["sqs"].get_queue_url(QueueName=SUBSCRIBER_QUEUE)["QueueUrl"]
    r("Publish", "sns", "publish", TopicArn=topic, Message=json.dumps({"type": "OrderCreated"}),
      Subject="parity", MessageAttributes=attributes)
    envelope = r("ReceiveMessage of an SNS envelope", "sqs", "receive_message", QueueUrl=url, WaitTimeSeconds=5,
                 MessageAttributeNames=["All"])
    for m in envelope.get("Messages", []):
        run.aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    r("SetSubscriptionAttributes RawMessageDelivery", "sns", "set_subscription_attributes", SubscriptionArn=sub,
      AttributeName="RawMessageDelivery", AttributeValue="true")
    r("PublishBatch", "sns", "publish_batch", TopicArn=topic, PublishBatchRequestEntries=[
        {"Id": "one", "Message": "one", "MessageAttributes": attributes},
        {"Id": "two", "Message": "two", "MessageAttributes": attributes}])
    r("Publish to an unknown topic", "sns", "publish", TopicArn=unknown_topic, Message="x")
    r("ReceiveMessage of a raw delivery", "sqs", "receive_message", QueueUrl=url, WaitTimeSeconds=5,
      MessageAttributeNames=["All"])
    # A subscription's queue takes every SQS attribute type (the orders queue only String).
    typed = {"total": {"DataType": "Number", "StringValue": "3.00"},
             "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
             "trace.id": {"DataType": "String.custom", "StringValue": "t-1"}}
    run.aws["sqs"].purge_queue(QueueUrl=url)
    r("SendMessage with Number, Binary and custom attributes", "sqs", "send_message", QueueUrl=url,
      MessageBody="typed", MessageAttributes=typed)
    r("ReceiveMessage of Number, Binary and custom attributes", "sqs", "receive_message", QueueUrl=url,
      WaitTimeSeconds=1, MessageAttributeNames=["All"])
    r("Unsubscribe", "sns", "unsubscribe", SubscriptionArn=sub)
    r("GetSubscriptionAttributes of a removed subscription", "sns", "get_subscription_attributes",
      SubscriptionArn=sub)


def first_record(aws, stream_arn, shard):
    """The stream's first record, waited for (15 s at most): on serve the pipeline stores the
    order the SQS steps sent."""
    streams = aws["dynamodbstreams"]
    deadline = time.time() + 15
    while time.time() < deadline:
        it = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = streams.get_records(ShardIterator=it)["Records"]
        if records:
            return records[0]
        time.sleep(0.2)
    raise AssertionError("no record on the orders stream within 15 s")


def streams_steps(run, seed_item):
    """Every DynamoDB Streams operation of issue 16, and its documented errors. On moto
    `seed_item` is put first; returns the first record's image."""
    r = run.call
    if seed_item is not None:
        run.aws["dynamodb"].put_item(TableName=TABLE, Item=seed_item)
    r("ListStreams", "dynamodbstreams", "list_streams")
    stream_arn = r("ListStreams of the orders table", "dynamodbstreams", "list_streams",
                   TableName=TABLE)["Streams"][0]["StreamArn"]
    shard = r("DescribeStream", "dynamodbstreams", "describe_stream",
              StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    record = first_record(run.aws, stream_arn, shard)
    sequence = record["dynamodb"]["SequenceNumber"]
    it = {}
    for kind in ("TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        extra = {"SequenceNumber": sequence} if "SEQUENCE" in kind else {}
        it[kind] = r(f"GetShardIterator {kind}", "dynamodbstreams", "get_shard_iterator", StreamArn=stream_arn,
                     ShardId=shard, ShardIteratorType=kind, **extra)["ShardIterator"]
    r("GetRecords from TRIM_HORIZON", "dynamodbstreams", "get_records", ShardIterator=it["TRIM_HORIZON"], Limit=1)
    r("GetRecords from AT_SEQUENCE_NUMBER", "dynamodbstreams", "get_records",
      ShardIterator=it["AT_SEQUENCE_NUMBER"], Limit=1)
    r("GetRecords from LATEST", "dynamodbstreams", "get_records", ShardIterator=it["LATEST"])
    r("DescribeStream of an unknown stream", "dynamodbstreams", "describe_stream",
      StreamArn=stream_arn.replace(f"table/{TABLE}/", "table/no-such-table/"))
    r("GetShardIterator of an unknown shard", "dynamodbstreams", "get_shard_iterator", StreamArn=stream_arn,
      ShardId="shardId-00000000000000000009-00000000", ShardIteratorType="LATEST")
    r("GetShardIterator AT_SEQUENCE_NUMBER without a sequence number", "dynamodbstreams", "get_shard_iterator",
      StreamArn=stream_arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER")
    r("GetRecords with an iterator the stream did not issue", "dynamodbstreams", "get_records",
      ShardIterator="not-an-iterator-" + "x" * 8)
    return record["dynamodb"]["NewImage"]


def scenario(endpoint_url, on_moto, seed_item=None):
    """Runs every step against `endpoint_url`; returns the records and the first stream
    record's image (what moto is seeded with)."""
    aws = clients(endpoint_url)
    if on_moto:
        create_moto_resources(aws)
    run = Run(aws)
    sqs_steps(run)
    dynamodb_steps(run)
    item = streams_steps(run, seed_item if on_moto else None)
    sns_steps(run, on_moto)
    return run.records, item


def compare(moto_url, serve_url):
    """Runs the scenario on serve, then on moto (seeded with serve's item); the differences."""
    on_serve, item = scenario(serve_url, on_moto=False)
    on_moto, _ = scenario(moto_url, on_moto=True, seed_item=item)
    return shapes.differences(on_moto, on_serve)


def main(moto_url, serve_url):
    diffs = compare(moto_url, serve_url)
    json.dump(diffs, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(*sys.argv[1:3])
