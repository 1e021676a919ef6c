"""The API Gateway mapping templates of infra/template.yaml, rendered with a Velocity engine
(airspeed, which LocalStack uses for API Gateway) and sent to moto's SQS and DynamoDB as
API Gateway would send them: the form body of POST /orders really goes onto a queue, the
GetItem request of GET /orders/{orderID} really reads a table, and the services' answers
are mapped back to orderflow's JSON.

What this cannot prove is API Gateway's own Velocity behaviour; that is checked on AWS.
"""

import json
import re
import unittest
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal

import airspeed
from airspeed import operators

from .support import ACCOUNT, REGION, ROOT, load_template, moto_client, moto_url

# The java.lang.String methods the templates call, with Java's semantics.
operators.__additional_methods__[str].update(
    {
        "trim": lambda self: self.strip(),
        "indexOf": lambda self, sub, start=0: self.find(sub, start),
        "replaceAll": lambda self, pattern, repl: re.sub(pattern, repl.replace("\\", "\\\\"), self),
    }
)


class Input:
    """API Gateway's `$input`."""

    def __init__(self, body: str, params: dict | None = None):
        self.body = body
        self._params = params or {}

    def path(self, expression: str):
        value = json.loads(self.body) if self.body else None
        for part in re.findall(r"\.([A-Za-z0-9_]+)|\[(\d+)\]", expression[1:]):
            if value is None:
                return None
            key, index = part
            value = value.get(key) if key else value[int(index)]
        return value

    def params(self, name: str):
        return self._params.get(name)


class Util:
    """API Gateway's `$util`."""

    @staticmethod
    def urlEncode(text: str) -> str:  # noqa: N802 (the VTL name)
        return urllib.parse.quote_plus(text, safe="*")

    @staticmethod
    def escapeJavaScript(text: str) -> str:  # noqa: N802 (the VTL name)
        return json.dumps(text)[1:-1].replace("'", "\\'").replace("/", "\\/")


def render(
    template: str,
    body: str,
    params: dict | None = None,
    request_id: str = "req-1",
    extended_request_id: str = "Ab1CdEfGhIjKlM=",
) -> tuple[str, dict]:
    context = {"requestId": request_id, "extendedRequestId": extended_request_id, "responseOverride": {"header": {}}}
    out = airspeed.Template(template).merge({"input": Input(body, params), "util": Util(), "context": context})
    return out, context["responseOverride"]


def signed(service: str) -> str:
    # moto routes on the credential scope and does not check signatures.
    return f"AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"


def call(path: str, body: str, headers: dict) -> str:
    request = urllib.request.Request(moto_url() + path, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


# The schema's orderID pattern.
ORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

ORDER = {
    "customerId": "cust-42",
    "items": [{"sku": "BOOK-1", "quantity": 3, "unitPrice": 19.99}],
    "currency": "EUR",
    "notes": "it's \"quoted\" / back\\slash",
}


class PostOrders(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        integration = load_template()["Resources"]["PostOrderMethod"]["Properties"]["Integration"]
        cls.request = integration["RequestTemplates"]["application/json"]
        ok = next(r for r in integration["IntegrationResponses"] if r["StatusCode"] == "202")
        cls.response = ok["ResponseTemplates"]["application/json"]

    def form(self, body: dict, request_id: str = "req-1", extended_request_id: str = "Ab1CdEfGhIjKlM=") -> dict:
        out, _ = render(self.request, json.dumps(body), request_id=request_id, extended_request_id=extended_request_id)
        self.assertNotIn("\n", out, "the form body is one line")
        return urllib.parse.parse_qs(out, strict_parsing=True)

    def test_a_client_chosen_order_id_is_kept_and_the_body_is_unchanged(self):
        body = dict(ORDER, orderID="ord-7")
        form = self.form(body)
        self.assertEqual(form["Action"], ["SendMessageBatch"])
        self.assertEqual(form["SendMessageBatchRequestEntry.1.Id"], ["ord-7"])
        self.assertEqual(json.loads(form["SendMessageBatchRequestEntry.1.MessageBody"][0]), body)

    def test_a_missing_order_id_becomes_the_request_id(self):
        request_id = str(uuid.uuid4())
        form = self.form(ORDER, request_id=request_id)
        self.assertEqual(form["SendMessageBatchRequestEntry.1.Id"], [request_id])
        message = json.loads(form["SendMessageBatchRequestEntry.1.MessageBody"][0])
        self.assertEqual(message, dict(ORDER, orderID=request_id))

    def test_a_request_id_the_client_set_cannot_inject_form_parameters_or_json(self):
        # "$context.requestId: An ID for the request. Clients can override this request ID.
        # Use $context.extendedRequestId for a unique request ID that API Gateway generates."
        # https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-mapping-template-reference.html
        hostile = [
            "x&DelaySeconds=900",
            'x","customerId":"someone-else',
            "x&SendMessageBatchRequestEntry.1.DelaySeconds=900&Action=PurgeQueue",
            "../../etc",
            "a" * 65,
            "",
        ]
        for request_id in hostile:
            for extended in ("Ab1CdEfGhIjKlM=", "a+b/c=="):
                form = self.form(ORDER, request_id=request_id, extended_request_id=extended)
                self.assertEqual(
                    set(form),
                    {
                        "Action",
                        "SendMessageBatchRequestEntry.1.Id",
                        "SendMessageBatchRequestEntry.1.MessageBody",
                        "SendMessageBatchRequestEntry.1.MessageAttribute.1.Name",
                        "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType",
                        "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue",
                    },
                    f"request id {request_id!r} added or removed a form parameter",
                )
                self.assertEqual(form["Action"], ["SendMessageBatch"])
                (order_id,) = form["SendMessageBatchRequestEntry.1.Id"]
                self.assertRegex(order_id, ORDER_ID, f"request id {request_id!r}")
                self.assertTrue(order_id.startswith("ag-"), f"{request_id!r} is not a valid orderID, so the server makes one")
                message = json.loads(form["SendMessageBatchRequestEntry.1.MessageBody"][0])
                self.assertEqual(message, dict(ORDER, orderID=order_id))
                (attribute,) = form["SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue"]
                plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", request_id)
                self.assertEqual(attribute, request_id if plain else extended, "only a plain-token request id is kept")
        # Two requests API Gateway told apart get two ids.
        a = self.form(ORDER, request_id="x&y", extended_request_id="AAAA+BBB=")
        b = self.form(ORDER, request_id="x&y", extended_request_id="AAAA/BBB=")
        self.assertNotEqual(a["SendMessageBatchRequestEntry.1.Id"], b["SendMessageBatchRequestEntry.1.Id"])

    def test_the_request_id_travels_as_the_request_id_message_attribute(self):
        request_id = str(uuid.uuid4())
        form = self.form(dict(ORDER, orderID="ord-9"), request_id=request_id)
        entry = "SendMessageBatchRequestEntry.1.MessageAttribute.1."
        self.assertEqual(form[entry + "Name"], ["requestId"])
        self.assertEqual(form[entry + "Value.DataType"], ["String"])
        self.assertEqual(form[entry + "Value.StringValue"], [request_id])

    def test_an_entry_sqs_refused_is_a_503(self):
        xml = (
            "<SendMessageBatchResponse><SendMessageBatchResult><BatchResultErrorEntry><Id>ord-7</Id>"
            "<SenderFault>false</SenderFault><Code>InternalError</Code></BatchResultErrorEntry>"
            "</SendMessageBatchResult></SendMessageBatchResponse>"
        )
        out, override = render(self.response, xml)
        self.assertEqual(override.get("status"), 503)
        self.assertIn("error", json.loads(out))

    @unittest.skipUnless(moto_url(), "ORDERFLOW_MOTO_URL is not set (scripts/test-aws sets it)")
    def test_the_order_lands_on_moto_sqs_and_the_answer_names_it(self):
        sqs = moto_client("sqs")
        name = f"POC-Queue-{uuid.uuid4().hex[:8]}"
        queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
        cases = [
            (dict(ORDER, orderID="ord-9"), "req-42", "ord-9"),
            (ORDER, "req-42", "req-42"),
            # A client-set request id that tries to delay the message by 15 minutes.
            (ORDER, "x&DelaySeconds=900", "ag-Ab1CdEfGhIjKlM"),
        ]
        for body, request_id, expected_id in cases:
            out, _ = render(self.request, json.dumps(body), request_id=request_id)
            answer = call(
                f"/{ACCOUNT}/{name}",
                out,
                {"Content-Type": "application/x-www-form-urlencoded", "Authorization": signed("sqs")},
            )
            mapped, override = render(self.response, answer)
            self.assertNotIn("status", override, answer)
            self.assertEqual(
                json.loads(mapped),
                {"orderID": expected_id, "status": "ACCEPTED", "message": f"Order {expected_id} received"},
            )
            received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
            self.assertEqual(len(received), 1, f"the message is not delayed ({request_id!r})")
            self.assertEqual(json.loads(received[0]["Body"]), dict(body, orderID=expected_id))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=received[0]["ReceiptHandle"])


def fixture_item() -> dict:
    event = json.loads((ROOT / "crates" / "core" / "tests" / "fixtures" / "dynamodb-insert-event.json").read_text())
    return event["Records"][0]["dynamodb"]["NewImage"]


class GetOrder(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        integration = load_template()["Resources"]["GetOrderMethod"]["Properties"]["Integration"]
        cls.request = integration["RequestTemplates"]["application/json"]["Fn::Sub"]
        ok = next(r for r in integration["IntegrationResponses"] if r["StatusCode"] == "200")
        cls.response = ok["ResponseTemplates"]["application/json"]

    def get_item(self, table: str, order_id: str) -> dict:
        out, _ = render(self.request.replace("${OrdersTable}", table), "", params={"orderID": order_id})
        return json.loads(out)

    def test_an_id_that_cannot_be_an_order_id_is_looked_up_as_a_key_never_stored(self):
        for bad in ['x"}', "../etc", "-", ""]:
            self.assertEqual(self.get_item("t", bad)["Key"], {"orderID": {"S": "-"}}, bad)
        self.assertEqual(self.get_item("t", "ord-1")["Key"], {"orderID": {"S": "ord-1"}})

    def test_no_item_is_a_404(self):
        out, override = render(self.response, "{}")
        self.assertEqual(override.get("status"), 404)
        self.assertEqual(json.loads(out), {"error": "order not found"})

    @unittest.skipUnless(moto_url(), "ORDERFLOW_MOTO_URL is not set (scripts/test-aws sets it)")
    def test_a_stored_order_reads_back_from_moto_dynamodb_as_orderflow_json(self):
        dynamodb = moto_client("dynamodb")
        table = f"orders-{uuid.uuid4().hex[:8]}"
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "orderID", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "orderID", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        item = fixture_item()
        item["notes"] = {"S": ORDER["notes"]}
        item["requestId"] = {"S": "req-7"}
        dynamodb.put_item(TableName=table, Item=item)
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.GetItem",
            "Authorization": signed("dynamodb"),
        }
        answer = call("/", json.dumps(self.get_item(table, "ord-1001")), headers)
        mapped, override = render(self.response, answer)
        self.assertNotIn("status", override)
        order = json.loads(mapped, parse_float=Decimal)
        self.assertEqual(
            order,
            {
                "orderID": "ord-1001",
                "customerId": "cust-42",
                "customerEmail": "ada@example.com",
                "items": [
                    {"sku": "BOOK-1", "quantity": 3, "unitPrice": Decimal("19.99")},
                    {"sku": "PEN", "quantity": 1, "unitPrice": Decimal("0.1")},
                ],
                "currency": "EUR",
                "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
                "notes": ORDER["notes"],
                "total": Decimal("60.07"),
                "status": "STORED",
                "receivedAt": "2023-11-14T22:13:20.123Z",
                "storedAt": "2023-11-14T22:13:20.512Z",
                "requestId": "req-7",
            },
        )
        missing = call("/", json.dumps(self.get_item(table, "ord-404")), headers)
        _, override = render(self.response, missing)
        self.assertEqual(override.get("status"), 404)


if __name__ == "__main__":
    unittest.main()
