"""Inlines schema/order.schema.json as the API Gateway model in infra/template.yaml.

CloudFormation cannot read a local file into AWS::ApiGateway::Model, so the schema is
copied between the BEGIN/END markers; infra/tests/test_template.py fails when the copy
and the file differ. A new model is a new API deployment, so this also renames the
deployment (infra/api_deployment.py). Run: python3 infra/inline_schema.py
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
SCHEMA = ROOT / "schema" / "order.schema.json"

BLOCK = re.compile(
    r"(?P<indent>[ ]*)# BEGIN schema/order.schema.json[^\n]*\n.*?\n(?P=indent)# END schema/order.schema.json",
    re.S,
)


def inlined(template: str, schema: dict) -> str:
    match = BLOCK.search(template)
    if not match:
        raise SystemExit("infra/template.yaml has no BEGIN/END schema/order.schema.json markers")
    indent = match.group("indent")
    body = json.dumps(schema, indent=2, ensure_ascii=False)
    lines = [f"{indent}# BEGIN schema/order.schema.json (python3 infra/inline_schema.py rewrites this block)"]
    lines.append(f"{indent}Schema:")
    lines += [f"{indent}  {line}" for line in body.splitlines()]
    lines.append(f"{indent}# END schema/order.schema.json")
    return template[: match.start()] + "\n".join(lines) + template[match.end() :]


if __name__ == "__main__":
    schema = json.loads(SCHEMA.read_text())
    from api_deployment import renamed

    TEMPLATE.write_text(renamed(inlined(TEMPLATE.read_text(), schema)))
    print(f"inlined {SCHEMA.relative_to(ROOT)} into {TEMPLATE.relative_to(ROOT)}")
