"""What POST /orders answers when SQS does not take the order: the client's faults are 400
or 413, ours are 503 with Retry-After, as `orderflow serve` answers them.

API Gateway picks the integration response whose SelectionPattern matches the backend's
HTTP status code (for AWS service integrations), else the one without a pattern:
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-integration-settings-integration-response.html
$context.responseOverride changes the status and headers:
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-override-request-response-parameters.html
SQS's errors for SendMessageBatch (BatchRequestTooLong, InvalidMessageContents, KmsThrottled,
QueueDoesNotExist, RequestThrottled, ...), its common errors (AccessDenied, InternalFailure,
ServiceUnavailable, ThrottlingException), and the per-entry BatchResultErrorEntry.SenderFault:
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/CommonErrors.html
https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_BatchResultErrorEntry.html
"""

import json
import re
import unittest

from .support import load_template
from .test_mapping_templates import render


def error(status: int, code: str, message: str, kind: str = "Sender") -> tuple[int, str]:
    return status, (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message><Detail/></Error>"
        "<RequestId>42d59b56-7407-4c4a-be0f-4c88daeea257</RequestId></ErrorResponse>"
    )


def entry_error(sender_fault: bool, code: str) -> tuple[int, str]:
    return 200, (
        "<SendMessageBatchResponse><SendMessageBatchResult><BatchResultErrorEntry><Id>ord-7</Id>"
        f"<SenderFault>{str(sender_fault).lower()}</SenderFault><Code>{code}</Code><Message>m</Message>"
        "</BatchResultErrorEntry></SendMessageBatchResult></SendMessageBatchResponse>"
    )


# (what SQS answered) -> (the status the client gets, whether it says when to retry)
CASES = {
    "a batch over the size limit": (error(400, "AWS.SimpleQueueService.BatchRequestTooLong", "Batch requests cannot be longer than 1048576 bytes. You have sent 1100000 bytes."), 413, False),
    "a message over the size limit": (error(400, "InvalidParameterValue", "One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes."), 413, False),
    "characters SQS refuses": (error(400, "InvalidMessageContents", "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF"), 400, False),
    "an entry SQS refuses as the sender's fault": (entry_error(True, "InvalidParameterValue"), 400, False),
    "an entry SQS failed on its side": (entry_error(False, "InternalError"), 503, True),
    "SQS throttling": (error(400, "RequestThrottled", "Rate exceeded"), 503, True),
    "KMS throttling": (error(400, "KmsThrottled", "Request was denied due to request throttling."), 503, True),
    "a role that may not send": (error(403, "AccessDenied", "Access to the resource https://sqs.us-east-1.amazonaws.com/ is denied."), 503, True),
    "a queue that is gone": (error(400, "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."), 503, True),
    "an SQS failure": (error(500, "InternalFailure", "We encountered an internal error.", "Receiver"), 503, True),
    "SQS unavailable": (error(503, "ServiceUnavailable", "Service is unavailable.", "Receiver"), 503, True),
}


class SqsErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        post = load_template()["Resources"]["PostOrderMethod"]["Properties"]
        cls.responses = post["Integration"]["IntegrationResponses"]
        cls.method_responses = {r["StatusCode"]: r.get("ResponseParameters", {}) for r in post["MethodResponses"]}

    def answer(self, status: int, body: str) -> tuple[int, dict, dict]:
        """API Gateway's choice of integration response, its template, and the overrides."""
        chosen = next(
            (r for r in self.responses if "SelectionPattern" in r and re.fullmatch(r["SelectionPattern"], str(status))),
            None,
        ) or next(r for r in self.responses if "SelectionPattern" not in r)
        out, override = render(chosen["ResponseTemplates"]["application/json"], body)
        final = int(override.get("status", chosen["StatusCode"]))
        headers = dict(override.get("header", {}))
        for name, value in chosen.get("ResponseParameters", {}).items():
            if name.startswith("method.response.header.") and isinstance(value, str):
                headers.setdefault(name.removeprefix("method.response.header."), value.strip("'"))
        self.assertIn(str(final), self.method_responses, f"{final} is not a method response of POST /orders")
        return final, headers, json.loads(out)

    def test_client_faults_are_400_or_413_and_server_faults_are_a_503_with_retry_after(self):
        for name, ((status, body), expected, retry) in CASES.items():
            with self.subTest(name):
                final, headers, answer = self.answer(status, body)
                self.assertEqual(final, expected, name)
                self.assertIsInstance(answer["error"], str)
                self.assertEqual(answer.get("details"), [])
                if retry:
                    self.assertEqual(headers.get("Retry-After"), "1", name)
                    self.assertIn("retry", answer["error"])
                else:
                    self.assertNotIn("Retry-After", headers, name)


class DynamoDbErrors(unittest.TestCase):
    """GET /orders/{orderID}: DynamoDB throttling is a retryable 503, as with serve.
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
    """

    def test_throttling_is_a_503_with_retry_after_and_our_own_faults_a_500(self):
        get = load_template()["Resources"]["GetOrderMethod"]["Properties"]
        helper = SqsErrors()
        helper.responses = get["Integration"]["IntegrationResponses"]
        helper.method_responses = {r["StatusCode"]: r.get("ResponseParameters", {}) for r in get["MethodResponses"]}

        def dynamodb(status, kind):
            body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{kind}", "message": "m"})
            return helper.answer(status, body)

        for kind in ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"):
            final, headers, body = dynamodb(400, kind)
            self.assertEqual((final, headers.get("Retry-After")), (503, "1"), kind)
            self.assertIn("retry", body["error"])
        final, headers, _ = dynamodb(500, "InternalServerError")
        self.assertEqual((final, headers.get("Retry-After")), (503, "1"))
        final, headers, _ = dynamodb(400, "ResourceNotFoundException")
        self.assertEqual(final, 500)
        self.assertNotIn("Retry-After", headers)


if __name__ == "__main__":
    unittest.main()
