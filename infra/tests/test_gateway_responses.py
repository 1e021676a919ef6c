"""The gateway responses of infra/template.yaml, rendered the way API Gateway renders them:
by simple `$context` substitution, with no Velocity at all.

"A GatewayResponse mapping template isn't processed by the Velocity Template Language (VTL)
engine" and supports "only simple variable substitution":
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-gateway-responses.responseTemplates.html
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-gatewayResponse-definition.html

`$context.error.messageString` is "the quoted value of $context.error.message, namely
"$context.error.message"", and `$context.error.validationErrorString` is "a string containing
a detailed validation error message", not quoted:
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html
"""

import json
import re
import unittest

from .support import load_template, resources

# What API Gateway may put into a gateway response. Only messageString arrives quoted.
HOSTILE = [
    'Invalid request body',
    'quote " inside',
    'back\\slash \\" and \\u0000',
    "new\nline\r\nand\ttab",
    '"}, "injected": true, "x": "',
    "[instance type (string) does not match any allowed primitive type (allowed: [\"integer\"])]",
    "ünïcødé ✓ \u2028",
]

VARIABLE = re.compile(r"\$context\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")


def context_for(message: str) -> dict:
    return {
        "$context.error.message": message,
        "$context.error.messageString": json.dumps(message),
        "$context.error.validationErrorString": message,
        "$context.error.responseType": "BAD_REQUEST_BODY",
        "$context.requestId": message,
        "$context.extendedRequestId": "Abc-123=",
    }


def substitute(template: str, context: dict) -> str:
    """API Gateway's gateway-response rendering: each `$context...` variable replaced by its
    value, everything else sent as written (so `$util`, `#set` and quotes stay literal)."""
    return VARIABLE.sub(lambda m: context.get(m.group(0), m.group(0)), template)


def gateway_responses() -> dict:
    return resources(load_template(), "AWS::ApiGateway::GatewayResponse")


class GatewayResponses(unittest.TestCase):
    def test_every_gateway_response_is_our_json_error_whatever_message_api_gateway_substitutes(self):
        responses = gateway_responses()
        self.assertGreaterEqual(len(responses), 3)
        for name, response in responses.items():
            templates = response["Properties"]["ResponseTemplates"]
            self.assertIn("application/json", templates, name)
            for content_type, template in templates.items():
                for message in HOSTILE:
                    out = substitute(template, context_for(message))
                    try:
                        body = json.loads(out)
                    except json.JSONDecodeError as e:
                        self.fail(f"{name} {content_type} with message {message!r} is not JSON ({e}):\n{out}")
                    self.assertIsInstance(body, dict, name)
                    self.assertLessEqual(set(body), {"error", "details"}, f"{name}: {body}")
                    self.assertIsInstance(body.get("error"), str, f"{name}: {body}")
                    self.assertTrue(body["error"], name)
                    for detail in body.get("details", []):
                        self.assertEqual(set(detail), {"field", "message"}, name)
                        self.assertTrue(all(isinstance(v, str) for v in detail.values()), name)

    def test_gateway_responses_use_no_velocity_and_no_unquoted_message(self):
        for name, response in gateway_responses().items():
            for template in response["Properties"]["ResponseTemplates"].values():
                self.assertNotRegex(template, r"\$(util|input)\b|#(set|if|foreach)\b", f"{name}: VTL goes out as written")
                for variable in VARIABLE.findall(template):
                    self.assertEqual(
                        variable, "$context.error.messageString", f"{name}: {variable} is not JSON-quoted by API Gateway"
                    )

    def test_a_route_only_orderflow_serve_has_is_a_404_that_says_so(self):
        # API Gateway answers unknown routes with MISSING_AUTHENTICATION_TOKEN (403):
        # https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
        responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in gateway_responses().values()}
        missing = responses["MISSING_AUTHENTICATION_TOKEN"]
        self.assertEqual(missing["StatusCode"], "404")
        body = json.loads(substitute(missing["ResponseTemplates"]["application/json"], context_for("Missing Authentication Token")))
        self.assertIn("orderflow serve only", body["error"])

    def test_a_schema_violation_is_a_400_and_a_throttled_request_says_when_to_retry(self):
        responses = {r["Properties"]["ResponseType"]: r["Properties"] for r in gateway_responses().values()}
        self.assertEqual(responses["BAD_REQUEST_BODY"]["StatusCode"], "400")
        for kind in ("THROTTLED", "QUOTA_EXCEEDED"):
            self.assertIn("gatewayresponse.header.Retry-After", responses[kind]["ResponseParameters"], kind)


if __name__ == "__main__":
    unittest.main()
