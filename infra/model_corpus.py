"""Edge-case orders judged by the API Gateway model, for the check that the Lambda agrees.

An order API Gateway's request validator accepts gets a 202 and goes on the queue; if
`store-orders` (`Order::parse`) then rejects it, it ends in the dead-letter queue and never
appears. So every order the model accepts must parse. This module builds a corpus from
whatever schema the template's `Order` model holds (edge values for every string and number
it constrains), judges each with a real draft-4 validator (PyPI `jsonschema`,
Draft4Validator) the way API Gateway evaluates a model, renders the accepted ones through
the POST mapping template into the SQS message body, and writes them for
crates/aws/tests/model_parity.rs, which runs `Order::parse` on each.

API Gateway models are JSON Schema draft 4:
https://docs.aws.amazon.com/apigateway/latest/developerguide/models-mappings-models.html
Draft 4 patterns are ECMA 262 regular expressions, not Python's (`$` does not match before a
final newline; `\\s`, `\\d`, `\\w` have the ECMA meanings):
https://json-schema.org/draft-04/json-schema-validation#rfc.section.5.2.3
Numbers are compared exactly (API Gateway reads 19.99 as a decimal, not a binary float).

Usage: python3 infra/model_corpus.py OUT.json
"""

import json
import re
import sys
from decimal import Decimal
from pathlib import Path

from jsonschema import Draft4Validator, validators
from jsonschema.exceptions import ValidationError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# ECMA 262 WhiteSpace and LineTerminator: what `\s` means in a draft-4 pattern.
ECMA_SPACE = "\\t\\n\\x0b\\x0c\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
ECMA_CLASSES = {"s": ECMA_SPACE, "d": "0-9", "w": "A-Za-z0-9_"}


def ecma_to_python(pattern: str) -> str:
    """The Python `re` pattern that matches what the ECMA 262 pattern matches."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            e = pattern[i + 1]
            if e in ECMA_CLASSES:
                out.append(ECMA_CLASSES[e] if in_class else f"[{ECMA_CLASSES[e]}]")
            elif e.lower() in ECMA_CLASSES and not in_class:
                out.append(f"[^{ECMA_CLASSES[e.lower()]}]")
            elif e.lower() in ECMA_CLASSES:
                raise ValueError(f"negated class escape \\{e} inside [...] is not translated: {pattern}")
            else:
                out.append(c + e)
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        elif c == "$" and not in_class:
            c = r"\Z"
        out.append(c)
        i += 1
    return "".join(out)


def _ecma_pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not re.search(ecma_to_python(pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


ApiGatewayModel = validators.extend(Draft4Validator, {"pattern": _ecma_pattern})


def model_schema() -> dict:
    from infra.tests.support import load_template

    model = load_template()["Resources"]["OrderModel"]["Properties"]["Schema"]
    return json.loads(json.dumps(model), parse_float=Decimal)


def accepts(validator, text: str) -> bool:
    return validator.is_valid(json.loads(text, parse_float=Decimal))


# ---------------------------------------------------------------- the corpus

STRINGS = [
    "", " ", "a", "ü", "\U0001d11e", "a b", "a\n", "\n", "a\r\n", "\t", "a\u0000", "\u001f", "\u007f",
    "\u0085", "\u00a0", "\u2028", "\u200b", "\ufeff", "\ufffd", "a\u001c", "<b>x</b>", "'\"\\",
    "EUR", "EUR\n", "eur", "EURO", "DE", "DE\n", "de", "D\u0395",
    "a@b.c", "a@b.co", "a..b@example.com", ".a@example.com", "a@-b.com", "a@b_c.com", "a@b.c.", "a@b",
    "\"a b\"@example.com", "a@[192.0.2.1].com", "a@b.c\u001c", "a\u00a0@b.c", "ü@ü.de", "a@b.c\n", "a b@c.d",
    "ord-1", "-ord", "_x", "Ord_1-a", "ord.1", "ord 1", "ord/1",
]
NUMBERS = [
    "0", "-0", "0.0", "1", "1.0", "1e0", "1E2", "1e-2", "0.01", "0.010", "0.001", "19.99", "1.005", "0.1",
    "-1", "-0.01", "9999", "10000", "10001", "1000000000", "1000000000.00", "1000000000.01", "1e9", "1e10",
    "12345678.9", "3.14159", "2.5e-1", "100.5000",
]


def string_constraints(schema: dict, path=()):
    """Every string property of the schema, with its own edge values."""
    if schema.get("type") == "string":
        lengths = {schema.get("minLength", 0), schema.get("maxLength", 1)}
        lengths |= {n + d for n in set(lengths) for d in (-1, 1) if n + d >= 0}
        values = list(STRINGS)
        for n in sorted(lengths):
            values += ["a" * n, "\U0001d11e" * n, "A" * n]
        yield path, values
    for name, sub in schema.get("properties", {}).items():
        yield from string_constraints(sub, path + (name,))
    if isinstance(schema.get("items"), dict):
        yield from string_constraints(schema["items"], path + (0,))


def number_paths(schema: dict, path=()):
    if schema.get("type") in ("number", "integer"):
        yield path
    for name, sub in schema.get("properties", {}).items():
        yield from number_paths(sub, path + (name,))
    if isinstance(schema.get("items"), dict):
        yield from number_paths(schema["items"], path + (0,))


def base_order() -> dict:
    return {
        "orderID": "ord-1",
        "customerId": "cust-42",
        "customerEmail": "ada@example.com",
        "items": [{"sku": "BOOK-1", "quantity": 3, "unitPrice": Decimal("19.99")}],
        "currency": "EUR",
        "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
        "notes": "ring twice",
    }


RAW = "@@raw@@"


def with_value(order: dict, path: tuple, value) -> dict:
    copy = json.loads(dumps(order), parse_float=Decimal)
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copy


def dumps(order: dict) -> str:
    return json.dumps(order, ensure_ascii=False, default=lambda d: RAW + str(d) + RAW).replace(f'"{RAW}', "").replace(f'{RAW}"', "")


def corpus(schema: dict) -> list[str]:
    base = base_order()
    texts = [dumps(base)]
    for path, values in string_constraints(schema):
        texts += [dumps(with_value(base, path, v)) for v in values]
    for path in number_paths(schema):
        texts += [_with_raw(base, path, raw) for raw in NUMBERS]
    for optional in ("orderID", "customerEmail", "shippingAddress", "notes"):
        texts.append(dumps({k: v for k, v in base.items() if k != optional}))
    texts.append(dumps(dict(base, items=[base["items"][0]] * 100)))
    texts.append(dumps(dict(base, items=[base["items"][0]] * 101)))
    texts.append(dumps(dict(base, items=[])))
    texts.append(dumps(dict(base, extra=1)))
    return texts


def _with_raw(order: dict, path: tuple, raw: str) -> str:
    """The order's JSON text with the number at `path` written exactly as `raw`."""
    marker = "__number__"
    return dumps(with_value(order, path, marker)).replace(f'"{marker}"', raw, 1)


# ---------------------------------------------------------------- through the POST mapping


def post_mapping():
    """The POST mapping template, compiled once, as a function of the request body."""
    import airspeed

    from infra.tests.support import load_template
    from infra.tests.test_mapping_templates import Input, Util

    source = load_template()["Resources"]["PostOrderMethod"]["Properties"]["Integration"]["RequestTemplates"]["application/json"]
    template = airspeed.Template(source)

    def render(text: str) -> str:
        context = {"requestId": "req-1", "extendedRequestId": "Ab1CdEfGhIjKlM=", "responseOverride": {"header": {}}}
        return template.merge({"input": Input(text), "util": Util(), "context": context})

    return render


def queued_body(render, text: str) -> str:
    """The SQS message body the POST mapping template makes of an accepted order."""
    from urllib.parse import parse_qs

    return parse_qs(render(text), strict_parsing=True)["SendMessageBatchRequestEntry.1.MessageBody"][0]


def judged() -> dict:
    schema = model_schema()
    accepted, rejected = [], []
    validator = ApiGatewayModel(schema)
    for text in dict.fromkeys(corpus(schema)):
        (accepted if accepts(validator, text) else rejected).append(text)
    render = post_mapping()
    return {"accepted": [queued_body(render, t) for t in accepted], "rejected": rejected}


if __name__ == "__main__":
    result = judged()
    Path(sys.argv[1]).write_text(json.dumps(result, ensure_ascii=False, indent=1))
    print(f"model corpus: {len(result['accepted'])} accepted, {len(result['rejected'])} rejected -> {sys.argv[1]}")
