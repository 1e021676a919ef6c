"""store-orders written as the seed's Python 3.11 Lambda would be: boto3, a DynamoDB client
made at init, a conditional PutItem per SQS record, partial batch failures. The baseline the
Rust bootstrap is measured against (scripts/bench-lambda).

Python Lambdas get their Runtime API loop from awslambdaric inside the managed runtime; this
is the same loop, minimal, over urllib, so both functions run under the same harness."""

import json
import os
import sys
import urllib.request
from datetime import datetime, timezone
from decimal import Decimal

import boto3
from botocore.exceptions import ClientError

TABLE = os.environ["ORDERS_TABLE"]
# Built once at init, as every boto3 handler does, so warm invocations reuse it.
dynamodb = boto3.client("dynamodb")

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"


class NotAnOrder(Exception):
    pass


def cents(value):
    if not isinstance(value, (int, Decimal)) or value < 0 or Decimal(value).as_tuple().exponent < -2:
        raise NotAnOrder("unitPrice must be >= 0 with at most 2 decimals")
    return Decimal(value)


def to_item(order, received_at, stored_at):
    items = []
    total = Decimal(0)
    for item in order["items"]:
        quantity, price = item["quantity"], cents(item["unitPrice"])
        if not isinstance(quantity, int) or not 1 <= quantity <= 10000:
            raise NotAnOrder("quantity must be 1-10000")
        total += quantity * price
        items.append({"M": {"sku": {"S": item["sku"]}, "quantity": {"N": str(quantity)},
                            "unitPrice": {"N": str(price)}}})
    if not items or not isinstance(order.get("customerId"), str):
        raise NotAnOrder("customerId and items are required")
    item = {
        "orderID": {"S": order["orderID"]},
        "customerId": {"S": order["customerId"]},
        "items": {"L": items},
        "currency": {"S": order["currency"]},
        "total": {"N": str(total)},
        "status": {"S": "STORED"},
        "receivedAt": {"S": received_at},
        "storedAt": {"S": stored_at},
    }
    if "customerEmail" in order:
        item["customerEmail"] = {"S": order["customerEmail"]}
    if "notes" in order:
        item["notes"] = {"S": order["notes"]}
    if "shippingAddress" in order:
        item["shippingAddress"] = {"M": {k: {"S": v} for k, v in order["shippingAddress"].items()}}
    return item


def store_record(record):
    order = json.loads(record["body"], parse_float=Decimal)
    if not isinstance(order, dict):
        raise NotAnOrder("the body is not a JSON object")
    now = datetime.now(timezone.utc)
    sent = record.get("attributes", {}).get("SentTimestamp")
    received = datetime.fromtimestamp(int(sent) / 1000, timezone.utc) if sent else now
    item = to_item(order, received.isoformat(), now.isoformat())
    try:
        dynamodb.put_item(TableName=TABLE, Item=item,
                          ConditionExpression="attribute_not_exists(orderID)")
    except ClientError as error:
        # SQS delivers at least once, so an order that is already stored is success.
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


def handler(event, context):
    failures = []
    for record in event["Records"]:
        try:
            store_record(record)
        except Exception as error:  # noqa: BLE001 - each record fails on its own
            print(json.dumps({"level": "WARN", "messageId": record["messageId"],
                              "error": repr(error)}), file=sys.stderr)
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def main():
    while True:
        with urllib.request.urlopen(API + "/invocation/next") as reply:
            request_id = reply.headers["Lambda-Runtime-Aws-Request-Id"]
            event = json.loads(reply.read())
        try:
            body, path = json.dumps(handler(event, None)).encode(), "response"
        except Exception as error:  # noqa: BLE001 - reported to Lambda, the loop goes on
            body = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__})
            body, path = body.encode(), "error"
        request = urllib.request.Request(f"{API}/invocation/{request_id}/{path}", data=body,
                                         method="POST")
        urllib.request.urlopen(request).close()


if __name__ == "__main__":
    main()
