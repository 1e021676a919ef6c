"""Names the API's AWS::ApiGateway::Deployment in infra/template.yaml after what it deploys.

CloudFormation creates a deployment only when the Deployment resource is new: an unchanged
logical id keeps serving the old methods, mappings, models and gateway responses on the
stage. So the logical id ends with a digest of every API Gateway resource of the template
(ApiDeployment<digest>), and DependsOn lists them all. infra/tests/test_api_deployment.py
fails when the digest is stale. Run: python3 infra/api_deployment.py
"""

import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"

# What a deployment snapshots: the API, its resources, methods, models, validators and
# gateway responses.
DEPLOYED = {
    "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Model",
    "AWS::ApiGateway::RequestValidator",
    "AWS::ApiGateway::GatewayResponse",
}
NAME = re.compile(r"\bApiDeployment[0-9a-f]*\b")
DEPENDS = re.compile(r"(?P<head>\n  ApiDeployment[0-9a-f]*:\n    Type: AWS::ApiGateway::Deployment\n    DependsOn:\n)(?P<list>(?:      - \w+\n)+)")


def parse(text: str) -> dict:
    from cfnlint.decode.cfn_yaml import loads

    return loads(text)


def deployed(template: dict) -> dict:
    return {k: v for k, v in sorted(template["Resources"].items()) if v["Type"] in DEPLOYED}


def logical_id(template: dict) -> str:
    digest = hashlib.sha256(json.dumps(deployed(template), sort_keys=True, default=str).encode()).hexdigest()
    return f"ApiDeployment{digest[:12]}"


def renamed(text: str) -> str:
    template = parse(text)
    name = logical_id(template)
    depends = "".join(f"      - {k}\n" for k, v in deployed(template).items() if v["Type"] != "AWS::ApiGateway::RestApi")
    if not DEPENDS.search(text):
        raise SystemExit("infra/template.yaml has no ApiDeployment resource with a DependsOn list")
    text = DEPENDS.sub(lambda m: m.group("head") + depends, text, count=1)
    return NAME.sub(name, text)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TEMPLATE
    path.write_text(renamed(path.read_text()))
    print(f"{path}: the deployment is {logical_id(parse(path.read_text()))}")
