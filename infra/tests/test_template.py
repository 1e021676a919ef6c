"""infra/template.yaml says what issue 3 asks: checked by reading the template itself."""

import json
import re
import unittest

from .support import SCHEMA, load_template, resources

# Each role's actions, exactly (issue 3), plus CloudWatch Logs for each function, plus the
# one action the on-failure destination of a stream event source needs from the function's
# own role (Lambda sends the failed batch's metadata to the queue as the function).
EXPECTED_POLICIES = {
    "StoreOrdersRole": {
        "Lambda-Write-DynamoDB": ({"dynamodb:PutItem", "dynamodb:DescribeTable"}, "OrdersTable"),
        "Lambda-Read-SQS": (
            {
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ChangeMessageVisibility",
            },
            "OrdersQueue",
        ),
        "Lambda-Write-CloudWatchLogs": (
            {"logs:CreateLogStream", "logs:PutLogEvents"},
            "StoreOrdersLogGroup",
        ),
        "Lambda-XRay": ({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, "*"),
    },
    "PublishOrdersRole": {
        "Lambda-SNS-Publish": ({"sns:Publish", "sns:GetTopicAttributes"}, "OrdersTopic"),
        "Lambda-DynamoDBStreams-Read": (
            {
                "dynamodb:GetShardIterator",
                "dynamodb:DescribeStream",
                "dynamodb:ListStreams",
                "dynamodb:GetRecords",
            },
            "OrdersTable",
        ),
        "Lambda-OnFailure-SQS": ({"sqs:SendMessage"}, "StreamFailureQueue"),
        "Lambda-HeldBack-SQS": ({"sqs:SendMessage"}, "HeldBackQueue"),
        "Lambda-Write-CloudWatchLogs": (
            {"logs:CreateLogStream", "logs:PutLogEvents"},
            "PublishOrdersLogGroup",
        ),
        "Lambda-XRay": ({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, "*"),
    },
    "ApiRole": {
        "APIGateway-SQS-SendMessage": ({"sqs:SendMessage"}, "OrdersQueue"),
        "APIGateway-DynamoDB-GetItem": ({"dynamodb:GetItem"}, "OrdersTable"),
    },
    # API Gateway's account-wide role for access logs: the AWS managed policy only.
    "ApiGatewayCloudWatchRole": {},
}

# X-Ray's write actions have no resource-level permissions: their one resource is "*".
# https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html
MANAGED = {
    "ApiGatewayCloudWatchRole": [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}
    ]
}


def as_list(value):
    return value if isinstance(value, list) else [value]


def referenced(value) -> set[str]:
    """Logical ids an intrinsic (Ref, GetAtt, Sub) names."""
    if isinstance(value, dict):
        if "Ref" in value:
            return {value["Ref"]}
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return {target[0] if isinstance(target, list) else target.split(".")[0]}
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
    return set()


class Template(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.t = load_template()
        cls.r = cls.t["Resources"]

    def test_the_api_model_is_exactly_schema_order_schema_json(self):
        model = self.r["OrderModel"]["Properties"]
        self.assertEqual(
            model["Schema"],
            json.loads(SCHEMA.read_text()),
            "the inlined model drifted from schema/order.schema.json: run python3 infra/inline_schema.py",
        )
        self.assertEqual(model["ContentType"], "application/json")
        post = self.r["PostOrderMethod"]["Properties"]
        self.assertEqual(post["RequestModels"], {"application/json": {"Ref": "OrderModel"}})
        self.assertEqual(post["RequestValidatorId"], {"Ref": "BodyValidator"})
        self.assertTrue(self.r["BodyValidator"]["Properties"]["ValidateRequestBody"])

    def test_each_role_grants_exactly_the_seed_actions_on_this_stacks_resources(self):
        roles = resources(self.t, "AWS::IAM::Role")
        self.assertEqual(set(roles), set(EXPECTED_POLICIES), "one role per function and one for the API")
        for role, expected in EXPECTED_POLICIES.items():
            props = roles[role]["Properties"]
            self.assertEqual(props.get("ManagedPolicyArns"), MANAGED.get(role), role)
            policies = {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies", [])}
            self.assertEqual(set(policies), set(expected), role)
            for name, (actions, target) in expected.items():
                granted = set()
                for statement in policies[name]["Statement"]:
                    self.assertEqual(statement["Effect"], "Allow", f"{role}/{name}")
                    for action in as_list(statement["Action"]):
                        self.assertNotIn("*", action, f"{role}/{name}: wildcard action {action}")
                        granted.add(action)
                    for resource in as_list(statement["Resource"]):
                        if target == "*":
                            self.assertEqual(resource, "*", f"{role}/{name}")
                            continue
                        self.assertNotIsInstance(
                            resource, str, f"{role}/{name}: literal resource {resource!r} instead of this stack's ARN"
                        )
                        self.assertIn(target, referenced(resource), f"{role}/{name} must be scoped to {target}")
                self.assertEqual(granted, actions, f"{role}/{name}")

    def test_functions_use_their_own_roles_and_no_generated_policies(self):
        for name, function in resources(self.t, "AWS::Serverless::Function").items():
            props = function["Properties"]
            self.assertIn("Role", props, name)
            self.assertNotIn("Policies", props, name)

    def test_the_queue_has_a_dead_letter_queue_encryption_and_a_long_enough_visibility(self):
        timeout = self.t["Globals"]["Function"]["Timeout"]
        for name, function in resources(self.t, "AWS::Serverless::Function").items():
            self.assertLessEqual(function["Properties"].get("Timeout", timeout), timeout, name)
        queue = self.r["OrdersQueue"]["Properties"]
        self.assertGreaterEqual(queue["VisibilityTimeout"], 6 * timeout)
        self.assertEqual(queue["RedrivePolicy"]["maxReceiveCount"], 5)
        self.assertEqual(queue["RedrivePolicy"]["deadLetterTargetArn"], {"Fn::GetAtt": ["OrdersDeadLetterQueue", "Arn"]})
        for name in resources(self.t, "AWS::SQS::Queue"):
            self.assertTrue(self.r[name]["Properties"]["SqsManagedSseEnabled"], name)

    def test_the_table_is_on_demand_with_a_new_image_stream_and_pitr(self):
        table = self.r["OrdersTable"]["Properties"]
        self.assertEqual(table["BillingMode"], "PAY_PER_REQUEST")
        self.assertEqual(table["KeySchema"], [{"AttributeName": "orderID", "KeyType": "HASH"}])
        self.assertEqual(table["AttributeDefinitions"], [{"AttributeName": "orderID", "AttributeType": "S"}])
        self.assertEqual(table["StreamSpecification"], {"StreamViewType": "NEW_IMAGE"})
        self.assertTrue(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])

    def test_store_orders_reads_the_queue_in_batches_of_ten_with_partial_failures(self):
        fn = self.r["StoreOrdersFunction"]
        self.assertEqual(fn["Metadata"]["BuildMethod"], "rust-cargolambda")
        self.assertEqual(fn["Metadata"]["BuildProperties"]["Binary"], "store-orders")
        self.assertEqual(fn["Properties"]["Environment"]["Variables"], {"ORDERS_TABLE": {"Ref": "OrdersTable"}})
        (event,) = fn["Properties"]["Events"].values()
        self.assertEqual(event["Type"], "SQS")
        self.assertEqual(event["Properties"]["Queue"], {"Fn::GetAtt": ["OrdersQueue", "Arn"]})
        self.assertEqual(event["Properties"]["BatchSize"], 10)
        self.assertEqual(event["Properties"]["FunctionResponseTypes"], ["ReportBatchItemFailures"])

    def test_publish_orders_reads_inserts_with_bisect_bounded_retries_and_an_on_failure_queue(self):
        fn = self.r["PublishOrdersFunction"]
        self.assertEqual(fn["Metadata"]["BuildMethod"], "rust-cargolambda")
        self.assertEqual(fn["Metadata"]["BuildProperties"]["Binary"], "publish-orders")
        self.assertEqual(
            fn["Properties"]["Environment"]["Variables"],
            {"ORDERS_TOPIC_ARN": {"Ref": "OrdersTopic"}, "HELD_BACK_QUEUE_URL": {"Ref": "HeldBackQueue"}},
        )
        (event,) = fn["Properties"]["Events"].values()
        p = event["Properties"]
        self.assertEqual(event["Type"], "DynamoDB")
        self.assertEqual(p["Stream"], {"Fn::GetAtt": ["OrdersTable", "StreamArn"]})
        self.assertEqual([json.loads(f["Pattern"]) for f in p["FilterCriteria"]["Filters"]], [{"eventName": ["INSERT"]}])
        self.assertTrue(p["BisectBatchOnFunctionError"])
        self.assertTrue(0 <= p["MaximumRetryAttempts"] <= 10)
        # An SNS outage is held back, not dropped (test_announcements.py); other failures are
        # retried whatever the record's age.
        self.assertEqual(p["MaximumRecordAgeInSeconds"], -1)
        self.assertEqual(p["DestinationConfig"]["OnFailure"]["Destination"], {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]})
        self.assertEqual(p["FunctionResponseTypes"], ["ReportBatchItemFailures"])

    def test_the_topic_has_an_email_subscription_from_the_parameter(self):
        subscription = self.r["OrdersEmailSubscription"]["Properties"]
        self.assertEqual(subscription["Protocol"], "email")
        self.assertEqual(subscription["Endpoint"], {"Ref": "NotificationEmail"})
        self.assertEqual(subscription["TopicArn"], {"Ref": "OrdersTopic"})

    def test_the_post_integration_url_encodes_the_body_and_assigns_missing_ids(self):
        integration = self.r["PostOrderMethod"]["Properties"]["Integration"]
        template = integration["RequestTemplates"]["application/json"]
        self.assertIn("$util.urlEncode($body)", template)
        self.assertIn("$context.requestId", template)
        self.assertEqual(integration["Credentials"], {"Fn::GetAtt": ["ApiRole", "Arn"]})
        statuses = {r["StatusCode"] for r in integration["IntegrationResponses"]}
        self.assertIn("202", statuses)

    def test_names_follow_the_seed_walkthrough_prefixed_with_the_stack(self):
        names = {
            "OrdersQueue": "QueueName",
            "OrdersTopic": "TopicName",
            "StoreOrdersFunction": "FunctionName",
            "PublishOrdersFunction": "FunctionName",
            "OrdersApi": "Name",
        }
        wanted = {
            "OrdersQueue": "POC-Queue",
            "OrdersTopic": "POC-Topic",
            "StoreOrdersFunction": "POC-Lambda-1",
            "PublishOrdersFunction": "POC-Lambda-2",
            "OrdersApi": "POC-API",
        }
        for logical, prop in names.items():
            self.assertEqual(self.r[logical]["Properties"][prop], {"Fn::Sub": "${NamePrefix}-" + wanted[logical]})

    def test_every_api_answer_carries_the_cors_header(self):
        for name, method in resources(self.t, "AWS::ApiGateway::Method").items():
            for response in method["Properties"]["MethodResponses"]:
                self.assertIn(
                    "method.response.header.Access-Control-Allow-Origin",
                    response.get("ResponseParameters", {}),
                    f"{name} {response['StatusCode']}",
                )
        for name, response in resources(self.t, "AWS::ApiGateway::GatewayResponse").items():
            self.assertIn("gatewayresponse.header.Access-Control-Allow-Origin", response["Properties"]["ResponseParameters"], name)

    def test_outputs_name_the_api_table_queue_and_topic(self):
        self.assertLessEqual({"ApiUrl", "OrdersTableName", "OrdersQueueUrl", "OrdersTopicArn"}, set(self.t["Outputs"]))

    def test_every_checkov_skip_gives_its_reason(self):
        for name, resource in self.t["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                self.assertRegex(skip["id"], r"^CKV2?_AWS_\d+$", name)
                self.assertGreater(len(skip.get("comment", "")), 20, f"{name} {skip['id']} needs a reason")


if __name__ == "__main__":
    unittest.main()
