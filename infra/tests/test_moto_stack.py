"""The template, translated to CloudFormation as `sam deploy` would, created as a stack on
moto's CloudFormation and deleted again. Resource types moto's CloudFormation does not
implement are listed in the output, not hidden; for those, the checks above and cfn-lint
are all the offline proof there is.
"""

import io
import json
import os
import uuid
import zipfile
from pathlib import Path

import unittest

from .support import ROOT, TEMPLATE, moto_client, moto_url

BUCKET = "orderflow-artifacts"


def bootstrap_zip(binary: str) -> bytes:
    """The `cargo lambda build` artifact when there is one, else a stand-in (moto never runs it)."""
    lambda_dir = os.environ.get("ORDERFLOW_LAMBDA_DIR") or str(ROOT / "target" / "lambda")
    built = Path(lambda_dir) / binary / "bootstrap"
    data = built.read_bytes() if built.exists() else b"#!/bin/sh\nexit 1\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, data)
    return buffer.getvalue()


def moto_supported_types() -> set[str]:
    """What moto's CloudFormation implements, read from the moto that serves the tests."""
    import importlib

    for service in ("apigateway", "awslambda", "dynamodb", "iam", "logs", "s3", "sns", "sqs"):
        importlib.import_module(f"moto.{service}.models")
    from moto.cloudformation.parsing import NULL_MODELS, get_model_map

    return set(get_model_map()) | set(NULL_MODELS)


@unittest.skipUnless(moto_url(), "ORDERFLOW_MOTO_URL is not set (scripts/test-aws sets it)")
class MotoStack(unittest.TestCase):
    def test_the_stack_creates_every_resource_moto_knows_and_deletes_cleanly(self):
        import sys

        sys.path.insert(0, str(ROOT / "infra"))
        from translate import translate

        s3 = moto_client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for binary in ("store-orders", "publish-orders"):
            s3.put_object(Bucket=BUCKET, Key=f"{binary}.zip", Body=bootstrap_zip(binary))
        template = translate(str(TEMPLATE), BUCKET)
        # moto fails on a MOCK integration without IntegrationHttpMethod and Uri, which
        # CloudFormation makes optional for MOCK: add them for moto only, and say so.
        for logical, resource in template["Resources"].items():
            integration = resource.get("Properties", {}).get("Integration", {})
            if integration.get("Type") == "MOCK":
                integration.setdefault("IntegrationHttpMethod", "POST")
                integration.setdefault("Uri", "")
                print(f"\n    moto workaround: IntegrationHttpMethod and Uri added to the MOCK integration of {logical}", end="")

        types = {r["Type"] for r in template["Resources"].values()}
        unsupported = sorted(types - moto_supported_types())
        print(f"\n    moto's CloudFormation does not implement: {', '.join(unsupported) or 'nothing'}")
        print("    (those resources are skipped by moto; they are covered by cfn-lint and the template checks)")

        cloudformation = moto_client("cloudformation")
        stack = f"orderflow-{uuid.uuid4().hex[:6]}"
        cloudformation.create_stack(
            StackName=stack,
            TemplateBody=json.dumps(template),
            Parameters=[
                {"ParameterKey": "NotificationEmail", "ParameterValue": "ops@example.com"},
                {"ParameterKey": "AlarmEmail", "ParameterValue": "oncall@example.com"},
                {"ParameterKey": "NamePrefix", "ParameterValue": stack},
            ],
            Capabilities=["CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        description = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        self.assertEqual(description["StackStatus"], "CREATE_COMPLETE", description.get("StackStatusReason"))
        created = {
            r["LogicalResourceId"]: r
            for r in cloudformation.list_stack_resources(StackName=stack)["StackResourceSummaries"]
        }
        for logical, resource in sorted(template["Resources"].items()):
            state = "created" if logical in created else "not created (moto, or a false Condition)"
            print(f"    {resource['Type']:<40} {logical:<34} {state}")
            # A resource with a Condition (the optional downstream queue) is absent by default.
            if resource["Type"] not in unsupported and "Condition" not in resource:
                self.assertIn(logical, created, f"{logical} ({resource['Type']}) was not created")

        outputs = {o["OutputKey"]: o["OutputValue"] for o in description.get("Outputs", [])}
        for key in ("OrdersTableName", "OrdersQueueUrl", "OrdersTopicArn"):
            self.assertIn(key, outputs)

        # What was created is what the template says.
        table = moto_client("dynamodb").describe_table(TableName=outputs["OrdersTableName"])["Table"]
        self.assertEqual(table["TableName"], f"{stack}-orders")
        self.assertEqual(table["StreamSpecification"]["StreamViewType"], "NEW_IMAGE")
        sqs = moto_client("sqs")
        attributes = sqs.get_queue_attributes(QueueUrl=outputs["OrdersQueueUrl"], AttributeNames=["All"])["Attributes"]
        self.assertEqual(attributes["VisibilityTimeout"], "60")
        self.assertEqual(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"], 5)
        self.assertTrue(outputs["OrdersQueueUrl"].endswith(f"{stack}-POC-Queue"))
        self.assertTrue(outputs["OrdersTopicArn"].endswith(f"{stack}-POC-Topic"))
        if "AWS::SNS::Subscription" not in unsupported:
            subscriptions = moto_client("sns").list_subscriptions_by_topic(TopicArn=outputs["OrdersTopicArn"])
            self.assertEqual(
                [(s["Protocol"], s["Endpoint"]) for s in subscriptions["Subscriptions"]],
                [("email", "ops@example.com")],
            )
        if "AWS::Lambda::EventSourceMapping" not in unsupported:
            mappings = moto_client("lambda").list_event_source_mappings()["EventSourceMappings"]
            mine = [m for m in mappings if stack in m.get("FunctionArn", "")]
            self.assertEqual(len(mine), 2, mappings)

        # `scripts/aws-redrive STACK announcements` finds the stack's queue and topic by its
        # outputs and republishes what publish-orders held back.
        from redrive import main as aws_redrive

        class Moto:
            def client(self, service):
                return moto_client(service)

        self.assertIn("HeldBackQueueUrl", outputs)
        sqs.send_message(
            QueueUrl=outputs["HeldBackQueueUrl"],
            MessageBody=json.dumps({"Subject": "OrderCreated", "Message": "{}", "MessageAttributes": {}}),
        )
        self.assertEqual(aws_redrive([stack, "announcements"], Moto()), 0)
        self.assertEqual(sqs.receive_message(QueueUrl=outputs["HeldBackQueueUrl"]).get("Messages", []), [])

        # `sam delete` is a stack deletion: nothing of the stack is left.
        cloudformation.delete_stack(StackName=stack)
        tables = moto_client("dynamodb").list_tables()["TableNames"]
        self.assertNotIn(f"{stack}-orders", tables)
        queues = sqs.list_queues(QueueNamePrefix=stack).get("QueueUrls", [])
        self.assertEqual(queues, [])


if __name__ == "__main__":
    unittest.main()
