"""scripts/smoke-aws's AWS calls (infra/smoke.py) against moto: the temporary SQS
subscription to the orders topic, the wait for an OrderCreated notification in the SNS
envelope, and the clean-up. Its HTTP calls to API Gateway and the sam commands need a real
account. SNS-to-SQS delivery needs a queue policy allowing sns.amazonaws.com:
https://docs.aws.amazon.com/sns/latest/dg/subscribe-sqs-queue-to-sns-topic.html
"""

import json
import sys
import unittest
import uuid

from .support import ROOT, moto_client, moto_url

sys.path.insert(0, str(ROOT / "infra"))
import smoke  # noqa: E402


@unittest.skipUnless(moto_url(), "ORDERFLOW_MOTO_URL is not set (scripts/test-aws sets it)")
class SmokeCalls(unittest.TestCase):
    def test_the_temporary_subscription_sees_the_order_created_notification_and_is_removed(self):
        sqs, sns = moto_client("sqs"), moto_client("sns")
        topic = sns.create_topic(Name=f"smoke-topic-{uuid.uuid4().hex[:6]}")["TopicArn"]
        name = f"smoke-{uuid.uuid4().hex[:6]}"
        queue_url, subscription = smoke.temporary_subscription(sqs, sns, topic, name)
        self.assertIn(subscription, [s["SubscriptionArn"] for s in sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]])
        sns.publish(TopicArn=topic, Subject="OrderCreated", Message=json.dumps({"type": "OrderCreated", "order": {"orderID": "other"}}))
        sns.publish(TopicArn=topic, Subject="OrderCreated", Message=json.dumps({"type": "OrderCreated", "order": {"orderID": "smoke-1"}}))
        envelope = smoke.wait_for_notification(sqs, queue_url, "smoke-1", timeout_s=20)
        self.assertEqual(envelope["TopicArn"], topic)
        with self.assertRaises(AssertionError):
            smoke.wait_for_notification(sqs, queue_url, "never", timeout_s=1)
        smoke.remove_subscription(sqs, sns, queue_url, subscription)
        self.assertEqual(sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"], [])
        self.assertEqual(sqs.list_queues(QueueNamePrefix=name).get("QueueUrls", []), [])


if __name__ == "__main__":
    unittest.main()
