"""Shared by the template checks: paths, the parsed template, moto access."""

import os
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
SCHEMA = ROOT / "schema" / "order.schema.json"
ACCOUNT = "123456789012"
REGION = "us-east-1"


def load_template() -> dict:
    template, errors = decode(str(TEMPLATE))
    if errors:
        raise AssertionError(f"{TEMPLATE} does not parse: {errors}")
    return template


def resources(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def moto_url() -> str | None:
    return os.environ.get("ORDERFLOW_MOTO_URL") or None


def moto_client(service: str):
    import boto3

    return boto3.client(
        service,
        endpoint_url=moto_url(),
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
