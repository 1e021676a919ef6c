"""A template change to the API reaches the stage.

CloudFormation creates an API Gateway deployment (the snapshot a stage serves) only when the
AWS::ApiGateway::Deployment resource is created; "to update an API, you must redeploy it"
and an unchanged Deployment is not redeployed:
https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-deploy-api.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-apigateway-deployment.html
So the deployment's logical id must change with every method, mapping, model and gateway
response (infra/api_deployment.py names it after their digest).
"""

import sys
import tempfile
import unittest
from pathlib import Path

from .support import ROOT, TEMPLATE, load_template, resources

sys.path.insert(0, str(ROOT / "infra"))
import api_deployment  # noqa: E402
from translate import translate  # noqa: E402


def translated(text: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "template.yaml"
        path.write_text(text)
        return translate(str(path))


def deployment_of(template: dict) -> str:
    (name,) = resources(template, "AWS::ApiGateway::Deployment")
    (stage,) = resources(template, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["DeploymentId"] == {"Ref": name}, stage
    return name


class ApiDeployment(unittest.TestCase):
    def test_the_deployment_is_named_after_what_it_deploys_and_waits_for_all_of_it(self):
        template = load_template()
        name = deployment_of(template)
        self.assertEqual(name, api_deployment.logical_id(template), "stale: run python3 infra/api_deployment.py")
        depends = set(template["Resources"][name]["DependsOn"])
        for logical, resource in api_deployment.deployed(template).items():
            if resource["Type"] != "AWS::ApiGateway::RestApi":
                self.assertIn(logical, depends, f"the deployment does not wait for {logical}")
        self.assertGreaterEqual(
            {r["Type"] for r in api_deployment.deployed(template).values()},
            {"AWS::ApiGateway::Method", "AWS::ApiGateway::Model", "AWS::ApiGateway::GatewayResponse"},
        )

    def test_a_changed_mapping_template_or_gateway_response_is_a_new_deployment_after_translation(self):
        text = TEMPLATE.read_text()
        before = deployment_of(translated(text))
        for old, new in [
            ('"status":"ACCEPTED"', '"status":"QUEUED"'),
            ("The order does not match the order schema", "The order breaks the order schema"),
            ('"title": "Order"', '"title": "An order"'),
        ]:
            self.assertIn(old, text)
            changed = api_deployment.renamed(text.replace(old, new, 1))
            after = deployment_of(translated(changed))
            self.assertNotEqual(before, after, f"changing {old!r} keeps the old deployment on the stage")
        self.assertEqual(api_deployment.renamed(text), text, "renaming is idempotent")


if __name__ == "__main__":
    unittest.main()
