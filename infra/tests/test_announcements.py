"""Nothing announced is lost on AWS, and one command each puts back what was set aside.

A DynamoDB stream keeps records 24 hours; its on-failure destination gets only the batch's
shard and sequence numbers, not the records:
https://docs.aws.amazon.com/lambda/latest/dg/services-dynamodb-errors.html
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html
So publish-orders holds back, whole, what SNS does not take, on a queue that keeps it 14
days (SQS's longest MessageRetentionPeriod):
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
and infra/redrive.py republishes it (run against moto's SQS and SNS here). The dead-letter
redrive is SQS StartMessageMoveTask, which moto does not implement: its request is checked
against botocore's SQS service model (Stubber validates parameters) instead.
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_StartMessageMoveTask.html
"""

import json
import sys
import unittest
import uuid

from .support import ROOT, load_template, moto_client, moto_url

sys.path.insert(0, str(ROOT / "infra"))
import redrive  # noqa: E402

# What crates/aws/src/held_back.rs writes (crates/aws/tests/moto/pipeline.rs checks the same keys).
EVENT = json.dumps({"type": "OrderCreated", "order": {"orderID": "ord-1001", "currency": "EUR"}})
HELD = {
    "Subject": "Order ord-1001 received: 60.07 EUR",
    # MessageStructure=json: "default" for SQS, HTTP and Lambda subscribers, "email" for mail
    # (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html, MessageStructure).
    "MessageStructure": "json",
    "Message": json.dumps({"default": EVENT, "email": "Order ord-1001\n...", "type": "OrderCreated"}),
    "MessageAttributes": {
        "eventType": {"DataType": "String", "StringValue": "OrderCreated"},
        "total": {"DataType": "Number", "StringValue": "60.07"},
    },
    "DeduplicationId": "shard-1:seq-1",
}


class Template(unittest.TestCase):
    def test_held_back_announcements_are_kept_as_long_as_sqs_keeps_anything(self):
        r = load_template()["Resources"]
        self.assertEqual(r["HeldBackQueue"]["Properties"]["MessageRetentionPeriod"], 1209600)
        self.assertEqual(r["StreamFailureQueue"]["Properties"]["MessageRetentionPeriod"], 1209600)
        self.assertEqual(r["OrdersDeadLetterQueue"]["Properties"]["MessageRetentionPeriod"], 1209600)
        outputs = load_template()["Outputs"]
        self.assertIn("HeldBackQueueUrl", outputs)
        self.assertIn("OrdersDeadLetterQueueArn", outputs)


class Redrive(unittest.TestCase):
    def test_the_dead_letter_redrive_is_one_valid_start_message_move_task(self):
        import boto3
        from botocore.stub import Stubber

        sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        arn = "arn:aws:sqs:us-east-1:123456789012:orderflow-POC-Queue-DLQ"
        with Stubber(sqs) as stub:
            stub.add_response("start_message_move_task", {"TaskHandle": "handle-1"}, {"SourceArn": arn})
            self.assertEqual(redrive.redrive_orders(sqs, arn), "handle-1")
            stub.assert_no_pending_responses()

    @unittest.skipUnless(moto_url(), "ORDERFLOW_MOTO_URL is not set (scripts/test-aws sets it)")
    def test_held_back_announcements_reach_subscribers_and_leave_the_queue(self):
        sqs, sns = moto_client("sqs"), moto_client("sns")
        held_url = sqs.create_queue(QueueName=f"held-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        topic = sns.create_topic(Name=f"topic-{uuid.uuid4().hex[:8]}")["TopicArn"]
        subscriber = sqs.create_queue(QueueName=f"sub-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=subscriber, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"FilterPolicy": json.dumps({"eventType": ["OrderCreated"]})})
        for _ in range(3):
            sqs.send_message(QueueUrl=held_url, MessageBody=json.dumps(HELD))

        self.assertEqual(redrive.republish(sqs, sns, held_url, topic), 3)

        got = []
        for _ in range(10):
            got += sqs.receive_message(QueueUrl=subscriber, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            if len(got) >= 3:
                break
        self.assertEqual(len(got), 3)
        notification = json.loads(got[0]["Body"])
        self.assertEqual(notification["Subject"], HELD["Subject"])
        # The subscriber gets the "default" message, the event itself, not the structure.
        self.assertEqual(notification["Message"], EVENT)
        self.assertEqual(notification["MessageAttributes"]["total"], {"Type": "Number", "Value": "60.07"})
        self.assertEqual(sqs.receive_message(QueueUrl=held_url, WaitTimeSeconds=0).get("Messages", []), [])


if __name__ == "__main__":
    unittest.main()
