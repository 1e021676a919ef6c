"""Translates infra/template.yaml (SAM) to plain CloudFormation JSON, offline.

As `sam package` would, each function's local CodeUri becomes an S3 location (by default
s3://orderflow-artifacts/<binary>.zip). Usage: python3 infra/translate.py TEMPLATE OUT.json
"""

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no managed policies, so nothing needs to be looked up in IAM."""

    def load(self):
        return {}


def translate(path: str, bucket: str = "orderflow-artifacts") -> dict:
    with open(path) as f:
        template = yaml_parse(f.read())
    template.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            binary = resource["Metadata"]["BuildProperties"]["Binary"]
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{binary}.zip"
    # The translator wants a region for the pseudo parameters; any gives the same template.
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    return transform(template, {}, NoManagedPolicies())


if __name__ == "__main__":
    source, target = sys.argv[1], sys.argv[2]
    with open(target, "w") as f:
        json.dump(translate(source), f, indent=1, sort_keys=True)
    print(f"translated {source} -> {target}")
