"""What the template's comments and checkov skip reasons claim is what the template does.

DynamoDB: `SSEEnabled: true` means KMS with the AWS managed key (aws/dynamodb); without it
the table uses an AWS owned key:
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-dynamodb-table-ssespecification.html
SQS event sources cap concurrency with ScalingConfig.MaximumConcurrency:
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html
"""

import re
import unittest

from .support import TEMPLATE, load_template


def skips(resource: dict) -> dict:
    return {s["id"]: s["comment"] for s in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}


class Comments(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.r = load_template()["Resources"]
        cls.text = TEMPLATE.read_text()

    def test_the_table_is_said_to_use_the_key_it_uses(self):
        table = self.r["OrdersTable"]
        enabled = table["Properties"].get("SSESpecification", {}).get("SSEEnabled") is True
        reason = skips(table)["CKV_AWS_119"]
        if enabled:
            self.assertIn("AWS managed KMS key", reason)
            self.assertNotIn("AWS owned key;", reason)
        else:
            self.assertIn("AWS owned key", reason)

    def test_the_store_function_concurrency_cap_is_the_one_configured(self):
        fn = self.r["StoreOrdersFunction"]
        reason = skips(fn)["CKV_AWS_115"]
        (event,) = fn["Properties"]["Events"].values()
        cap = event["Properties"]["ScalingConfig"]["MaximumConcurrency"]
        self.assertIn(f"MaximumConcurrency ({cap})", reason)
        self.assertIn("maxReceiveCount 5", skips(fn)["CKV_AWS_116"])
        self.assertEqual(self.r["OrdersQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"], 5)

    def test_the_publish_function_runs_one_batch_per_shard(self):
        fn = self.r["PublishOrdersFunction"]
        self.assertIn("ParallelizationFactor 1", skips(fn)["CKV_AWS_115"])
        (event,) = fn["Properties"]["Events"].values()
        self.assertEqual(event["Properties"]["ParallelizationFactor"], 1)

    def test_queues_said_to_use_sse_sqs_do(self):
        for name, resource in self.r.items():
            if "CKV_AWS_27" in skips(resource):
                self.assertIn("SqsManagedSseEnabled", skips(resource)["CKV_AWS_27"])
                self.assertTrue(resource["Properties"]["SqsManagedSseEnabled"], name)

    def test_the_environment_variables_named_as_not_secret_are_all_there_are(self):
        said = {"StoreOrdersFunction": {"ORDERS_TABLE": "table name"}, "PublishOrdersFunction": {"ORDERS_TOPIC_ARN": "topic ARN", "HELD_BACK_QUEUE_URL": "held-back queue URL"}}
        for name, variables in said.items():
            fn = self.r[name]
            self.assertEqual(set(fn["Properties"]["Environment"]["Variables"]), set(variables), name)
            for words in variables.values():
                self.assertIn(words, skips(fn)["CKV_AWS_173"], name)

    def test_the_deploy_command_in_the_description_is_the_readme_one(self):
        self.assertIn("sam build && sam deploy --guided", self.text)
        self.assertNotRegex(self.text, r"sam build -t ")


if __name__ == "__main__":
    unittest.main()
