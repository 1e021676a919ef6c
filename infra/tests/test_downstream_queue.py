"""The optional downstream queue (parameter DownstreamQueueName): what the template declares,
and, replayed against moto's SNS and SQS APIs with the template's own values, that the queue
receives what a `queue` subscription receives on `orderflow serve`.

moto's CloudFormation implements neither AWS::SNS::Subscription nor AWS::SQS::QueuePolicy
(the stack test lists them), so the moto half creates the queue, its policy and the
subscription through the APIs CloudFormation would call, with the properties read from the
template.
"""

import json
import re
import unittest
import uuid

from .support import load_template, moto_client, moto_url

DOWNSTREAM = ["DownstreamDeadLetterQueue", "DownstreamQueue", "DownstreamQueuePolicy", "DownstreamSubscription"]


class DownstreamQueueTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.r = cls.t["Resources"]

    def test_it_is_optional_and_off_by_default(self):
        parameters = self.t["Parameters"]
        self.assertEqual(parameters["DownstreamQueueName"]["Default"], "")
        self.assertEqual(parameters["DownstreamRawMessageDelivery"]["Default"], "true")
        self.assertEqual(parameters["DownstreamFilterPolicy"]["Default"], "")
        self.assertEqual(
            self.t["Conditions"]["HasDownstreamQueue"],
            {"Fn::Not": [{"Fn::Equals": [{"Ref": "DownstreamQueueName"}, ""]}]},
        )
        for logical in DOWNSTREAM:
            self.assertEqual(self.r[logical]["Condition"], "HasDownstreamQueue", logical)

    def test_the_queue_has_serves_defaults_a_dead_letter_queue_and_encryption(self):
        queue = self.r["DownstreamQueue"]["Properties"]
        self.assertEqual(queue["QueueName"], {"Fn::Sub": "${NamePrefix}-${DownstreamQueueName}"})
        self.assertEqual(queue["VisibilityTimeout"], 30)
        self.assertEqual(
            queue["RedrivePolicy"],
            {"deadLetterTargetArn": {"Fn::GetAtt": ["DownstreamDeadLetterQueue", "Arn"]}, "maxReceiveCount": 5},
        )
        self.assertTrue(queue["SqsManagedSseEnabled"])
        self.assertTrue(self.r["DownstreamDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"])
        # SSE-SQS, not SSE-KMS: for SNS to send to a KMS-encrypted queue "you must create a
        # customer managed KMS key and add permissions in the key policy" for it; the AWS managed
        # alias/aws/sqs key's policy cannot be changed, so SNS's deliveries would be refused.
        # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html
        for logical in ("DownstreamQueue", "DownstreamDeadLetterQueue"):
            self.assertNotIn("KmsMasterKeyId", self.r[logical]["Properties"], logical)

    def test_only_this_topic_may_send_to_the_queue(self):
        policy = self.r["DownstreamQueuePolicy"]["Properties"]
        self.assertEqual(policy["Queues"], [{"Ref": "DownstreamQueue"}])
        statements = policy["PolicyDocument"]["Statement"]
        self.assertEqual(len(statements), 1)
        statement = statements[0]
        self.assertEqual(statement["Effect"], "Allow")
        self.assertEqual(statement["Principal"], {"Service": "sns.amazonaws.com"})
        self.assertEqual(statement["Action"], "sqs:SendMessage")
        self.assertEqual(statement["Resource"], {"Fn::GetAtt": ["DownstreamQueue", "Arn"]})
        # Without the condition any topic in any account could send to the queue:
        # https://docs.aws.amazon.com/sns/latest/dg/subscribe-sqs-queue-to-sns-topic.html
        self.assertEqual(statement["Condition"], {"ArnEquals": {"aws:SourceArn": {"Ref": "OrdersTopic"}}})

    def test_the_subscription_delivers_raw_with_the_optional_filter(self):
        subscription = self.r["DownstreamSubscription"]
        self.assertEqual(subscription["DependsOn"], "DownstreamQueuePolicy")
        p = subscription["Properties"]
        self.assertEqual(p["TopicArn"], {"Ref": "OrdersTopic"})
        self.assertEqual(p["Protocol"], "sqs")
        self.assertEqual(p["Endpoint"], {"Fn::GetAtt": ["DownstreamQueue", "Arn"]})
        self.assertEqual(p["RawMessageDelivery"], {"Ref": "DownstreamRawMessageDelivery"})
        self.assertEqual(
            p["FilterPolicy"],
            {"Fn::If": ["HasDownstreamFilter", {"Ref": "DownstreamFilterPolicy"}, {"Ref": "AWS::NoValue"}]},
        )
        self.assertEqual(
            p["FilterPolicyScope"],
            {"Fn::If": ["HasDownstreamFilter", {"Ref": "DownstreamFilterPolicyScope"}, {"Ref": "AWS::NoValue"}]},
        )

    def test_its_names_fit_sqs_for_every_stack_name_the_rest_of_the_template_fits(self):
        # Name limits: SQS QueueName 80 (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html),
        # Lambda FunctionName 64, IAM RoleName 64, SNS TopicName 256, DynamoDB TableName 255.
        limits = {
            ("AWS::SQS::Queue", "QueueName"): 80,
            ("AWS::Serverless::Function", "FunctionName"): 64,
            ("AWS::Lambda::Function", "FunctionName"): 64,
            ("AWS::IAM::Role", "RoleName"): 64,
            ("AWS::SNS::Topic", "TopicName"): 256,
            ("AWS::DynamoDB::Table", "TableName"): 255,
        }
        pattern = self.t["Parameters"]["DownstreamQueueName"]["AllowedPattern"]
        longest = int(re.fullmatch(r"\^\[A-Za-z0-9_-\]\{0,(\d+)\}\$", pattern).group(1))
        stack_budget, downstream = 128, []
        for logical, resource in self.r.items():
            for (kind, prop), limit in limits.items():
                name = resource.get("Properties", {}).get(prop) if resource["Type"] == kind else None
                if not (isinstance(name, dict) and "Fn::Sub" in name):
                    continue
                suffix = name["Fn::Sub"].replace("${NamePrefix}", "")
                if "${DownstreamQueueName}" in suffix:
                    downstream.append((logical, len(suffix.replace("${DownstreamQueueName}", "x" * longest)), limit))
                else:
                    stack_budget = min(stack_budget, limit - len(suffix))
        self.assertEqual(len(downstream), 2, downstream)
        for logical, suffix, limit in downstream:
            self.assertLessEqual(
                stack_budget + suffix,
                limit,
                f"{logical}: a {stack_budget}-character stack name fits the other resources, "
                f"but with a {longest}-character DownstreamQueueName this name is too long",
            )


def order_created(order_id: str, currency: str) -> str:
    return json.dumps(
        {
            "type": "OrderCreated",
            "order": {"orderID": order_id, "customerId": "cust-42", "currency": currency, "total": 59.97},
        },
        separators=(",", ":"),
    )


def publish_as_publish_orders(sns, topic_arn: str, order_id: str, currency: str) -> str:
    """What crates/aws/src/sns.rs publishes: MessageStructure=json, `default` the event,
    `email` the mail text, the event's fields beside them, and the four attributes."""
    event = order_created(order_id, currency)
    structure = {"default": event, "email": f"A new order was stored.\n\nOrder:     {order_id}\n"}
    structure.update(json.loads(event))
    sns.publish(
        TopicArn=topic_arn,
        Subject=f"Order {order_id} received: 59.97 {currency}",
        Message=json.dumps(structure),
        MessageStructure="json",
        MessageAttributes={
            "eventType": {"DataType": "String", "StringValue": "OrderCreated"},
            "currency": {"DataType": "String", "StringValue": currency},
            "customerId": {"DataType": "String", "StringValue": "cust-42"},
            "total": {"DataType": "Number", "StringValue": "59.97"},
        },
    )
    return event


def resolve(value, parameters: dict, conditions: dict):
    """The few intrinsics the downstream block uses, with the stack's parameters."""
    if isinstance(value, dict):
        if "Ref" in value:
            return parameters.get(value["Ref"], value)
        if "Fn::If" in value:
            name, yes, no = value["Fn::If"]
            return resolve(yes if conditions[name] else no, parameters, conditions)
    return value


@unittest.skipUnless(moto_url(), "ORDERFLOW_MOTO_URL is not set (scripts/test-aws sets it)")
class DownstreamQueueOnMoto(unittest.TestCase):
    def deploy(self, parameters: dict) -> tuple[str, str, str]:
        """The downstream block against moto as CloudFormation would create it: returns the
        topic ARN, the queue URL and the dead-letter queue URL."""
        r = load_template()["Resources"]
        stack = f"orderflow-{uuid.uuid4().hex[:6]}"
        name = parameters["DownstreamQueueName"]
        parameters = {**parameters, "AWS::NoValue": None}
        conditions = {"HasDownstreamFilter": parameters.get("DownstreamFilterPolicy", "") != ""}
        sns, sqs = moto_client("sns"), moto_client("sqs")
        topic_arn = sns.create_topic(Name=f"{stack}-POC-Topic")["TopicArn"]

        dlq = r["DownstreamDeadLetterQueue"]["Properties"]
        dlq_url = sqs.create_queue(
            QueueName=f"{stack}-{name}-DLQ",
            Attributes={"MessageRetentionPeriod": str(dlq["MessageRetentionPeriod"])},
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        queue = r["DownstreamQueue"]["Properties"]
        redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": queue["RedrivePolicy"]["maxReceiveCount"]}
        queue_url = sqs.create_queue(
            QueueName=f"{stack}-{name}",
            Attributes={
                "VisibilityTimeout": str(queue["VisibilityTimeout"]),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

        document = json.loads(json.dumps(r["DownstreamQueuePolicy"]["Properties"]["PolicyDocument"]))
        for statement in document["Statement"]:
            statement["Resource"] = queue_arn
            statement["Condition"]["ArnEquals"]["aws:SourceArn"] = topic_arn
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(document)})

        p = r["DownstreamSubscription"]["Properties"]
        attributes = {"RawMessageDelivery": resolve(p["RawMessageDelivery"], parameters, conditions)}
        for key in ("FilterPolicy", "FilterPolicyScope"):
            value = resolve(p[key], parameters, conditions)
            if value is not None:
                attributes[key] = value
        sns.subscribe(TopicArn=topic_arn, Protocol=p["Protocol"], Endpoint=queue_arn, Attributes=attributes)
        return topic_arn, queue_url, dlq_url

    def receive(self, queue_url: str, expected: int) -> list[dict]:
        sqs = moto_client("sqs")
        received = []
        for _ in range(5):
            if len(received) >= expected:
                break
            answer = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
            )
            for message in answer.get("Messages", []):
                received.append(message)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return received

    def test_with_the_defaults_the_queue_gets_each_order_created_json_raw_with_its_attributes(self):
        topic_arn, queue_url, _ = self.deploy({"DownstreamQueueName": "warehouse", "DownstreamRawMessageDelivery": "true"})
        sns = moto_client("sns")
        sent = [publish_as_publish_orders(sns, topic_arn, f"ord-{i}", c) for i, c in enumerate(["EUR", "USD"])]
        received = self.receive(queue_url, 2)
        self.assertEqual(sorted(m["Body"] for m in received), sorted(sent), "the OrderCreated JSON, unchanged")
        for message in received:
            self.assertEqual(message["MessageAttributes"]["eventType"]["StringValue"], "OrderCreated")
            self.assertEqual(message["MessageAttributes"]["total"]["StringValue"], "59.97")

    def test_a_filter_policy_lets_only_matching_orders_through(self):
        topic_arn, queue_url, _ = self.deploy(
            {
                "DownstreamQueueName": "eur-only",
                "DownstreamRawMessageDelivery": "true",
                "DownstreamFilterPolicy": json.dumps({"currency": ["EUR"]}),
                "DownstreamFilterPolicyScope": "MessageAttributes",
            }
        )
        sns = moto_client("sns")
        eur = publish_as_publish_orders(sns, topic_arn, "ord-eur", "EUR")
        publish_as_publish_orders(sns, topic_arn, "ord-usd", "USD")
        received = self.receive(queue_url, 2)
        self.assertEqual([m["Body"] for m in received], [eur])

    def test_a_body_filter_names_the_event_fields_under_order_as_the_readme_shows(self):
        # The currency is a field of the event's `order`, not a top-level one: a body policy on
        # `currency` alone matches no order at all.
        for policy, wanted in [({"order": {"currency": ["EUR"]}}, ["EUR"]), ({"currency": ["EUR"]}, [])]:
            topic_arn, queue_url, _ = self.deploy(
                {
                    "DownstreamQueueName": "by-body",
                    "DownstreamRawMessageDelivery": "true",
                    "DownstreamFilterPolicy": json.dumps(policy),
                    "DownstreamFilterPolicyScope": "MessageBody",
                }
            )
            sns = moto_client("sns")
            sent = {c: publish_as_publish_orders(sns, topic_arn, f"ord-{c}", c) for c in ["EUR", "USD"]}
            received = self.receive(queue_url, len(wanted) or 1)
            self.assertEqual([m["Body"] for m in received], [sent[c] for c in wanted], policy)

    def test_without_raw_delivery_the_queue_gets_the_sns_envelope_of_the_event(self):
        topic_arn, queue_url, _ = self.deploy({"DownstreamQueueName": "enveloped", "DownstreamRawMessageDelivery": "false"})
        event = publish_as_publish_orders(moto_client("sns"), topic_arn, "ord-env", "EUR")
        [message] = self.receive(queue_url, 1)
        envelope = json.loads(message["Body"])
        self.assertEqual(envelope["Type"], "Notification")
        self.assertEqual(envelope["Message"], event)
        self.assertEqual(envelope["Subject"], "Order ord-env received: 59.97 EUR")

    def test_a_message_received_five_times_moves_to_the_dead_letter_queue(self):
        topic_arn, queue_url, dlq_url = self.deploy({"DownstreamQueueName": "flaky", "DownstreamRawMessageDelivery": "true"})
        event = publish_as_publish_orders(moto_client("sns"), topic_arn, "ord-dlq", "EUR")
        sqs = moto_client("sqs")
        for _ in range(5):
            answer = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1, VisibilityTimeout=0)
            self.assertEqual([m["Body"] for m in answer.get("Messages", [])], [event])
        answer = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)
        self.assertEqual(answer.get("Messages", []), [], "past maxReceiveCount it left the queue")
        [dead] = self.receive(dlq_url, 1)
        self.assertEqual(dead["Body"], event)


if __name__ == "__main__":
    unittest.main()
