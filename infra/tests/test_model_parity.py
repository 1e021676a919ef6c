"""The API Gateway `Order` model and the Lambda's parser judge orders alike.

The model is JSON Schema draft 4, evaluated by API Gateway:
https://docs.aws.amazon.com/apigateway/latest/developerguide/models-mappings-models.html
Draft 4 leaves `format` optional ("implementations MAY choose to implement validation for any
format"): https://json-schema.org/draft-04/json-schema-validation#rfc.section.7.1, and API
Gateway does not check it, while `Order::parse` does; so the schema carries no keyword the
two sides would evaluate differently. The other half of the check, `Order::parse` on every
accepted order, is crates/aws/tests/model_parity.rs over infra/model_corpus.py's corpus.
"""

import json
import re
import sys
import unittest

from .support import ROOT, SCHEMA

sys.path.insert(0, str(ROOT / "infra"))
import model_corpus  # noqa: E402

# Keywords whose evaluation differs between API Gateway's validator and the Rust parser.
NOT_EVALUATED_ALIKE = {"format"}


def keywords(schema, found=None):
    found = set() if found is None else found
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key != "properties":
                found.add(key)
            keywords(value, found)
    elif isinstance(schema, list):
        for value in schema:
            keywords(value, found)
    return found


class ModelParity(unittest.TestCase):
    def test_the_schema_has_no_keyword_api_gateway_and_the_parser_evaluate_differently(self):
        schema = json.loads(SCHEMA.read_text())
        self.assertEqual(keywords(schema) & NOT_EVALUATED_ALIKE, set())

    def test_patterns_are_judged_with_ecma_262_semantics(self):
        def matches(pattern, text):
            return re.search(model_corpus.ecma_to_python(pattern), text) is not None

        self.assertTrue(matches("^[A-Z]{3}$", "EUR"))
        self.assertFalse(matches("^[A-Z]{3}$", "EUR\n"), "ECMA $ does not match before a final newline")
        self.assertFalse(matches(r"^[^@\s]+$", "a\u00a0b"), "ECMA \\s includes no-break space")
        self.assertTrue(matches(r"^[^@\s]+$", "a\u001cb"), "ECMA \\s does not include U+001C")
        self.assertFalse(matches(r"^\d$", "\u0663"), "ECMA \\d is ASCII only")

    def test_the_corpus_has_orders_on_both_sides_of_every_constraint(self):
        result = model_corpus.judged()
        self.assertGreater(len(result["accepted"]), 100)
        self.assertGreater(len(result["rejected"]), 100)
        emails = {json.loads(body).get("customerEmail") for body in result["accepted"]}
        self.assertIn("a..b@example.com", emails, "the model takes what its pattern allows, format or not")
        for body in result["accepted"]:
            self.assertRegex(json.loads(body)["orderID"], r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


if __name__ == "__main__":
    unittest.main()
