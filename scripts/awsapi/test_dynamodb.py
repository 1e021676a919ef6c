"""boto3 (client and resource) drives `orderflow serve`'s DynamoDB JSON protocol on `orders`.

Each test names the DynamoDB API reference page it relies on
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_<Operation>.html); errors
follow "Error handling with DynamoDB"
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html):
a 400 with `__type` naming the error and a `message`.
"""

import binascii
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import urllib.request
import uuid
from decimal import Decimal

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import API_KEY, REGION, aws_client, aws_resource, order, wait_for

API = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/"


@pytest.fixture
def ddb(ddb_server):
    return aws_client(ddb_server, "dynamodb")


@pytest.fixture
def table(ddb_server):
    return aws_resource(ddb_server, "dynamodb").Table("orders")


def new_id(prefix="ddb"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def order_item(order_id, **overrides):
    """An order item as `store-orders` writes it (crates/core/src/item.rs), in boto3's
    resource form (numbers are Decimals)."""
    item = {
        "orderID": order_id,
        "customerId": "c-ddb",
        "customerEmail": "a@example.com",
        "items": [{"sku": "A-1", "quantity": 2, "unitPrice": Decimal("1.5")},
                  {"sku": "B-2", "quantity": 1, "unitPrice": Decimal("0.25")}],
        "currency": "EUR",
        "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
        "total": Decimal("3.25"),
        "status": "STORED",
        "receivedAt": "2026-11-29T22:00:00.000Z",
        "storedAt": "2026-11-29T22:00:01.000Z",
    }
    item.update(overrides)
    return item


def put_new(table, item):
    """The put `DynamoDbOrderTable` makes (crates/aws/src/table.rs)."""
    return table.put_item(Item=item, ConditionExpression=Attr("orderID").not_exists(),
                          ReturnValuesOnConditionCheckFailure="ALL_OLD")


def code(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def raw(server, target, body, content_type="application/x-amz-json-1.0"):
    """An unsigned request as the wire shows it (the server has no API key)."""
    req = urllib.request.Request(server.url + "/", data=json.dumps(body).encode(), method="POST")
    req.add_header("content-type", content_type)
    req.add_header("x-amz-target", "DynamoDB_20120810." + target)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, json.loads(e.read())


# ---------------------------------------------------------------- the table


def test_describe_table_reports_the_key_schema_stream_and_arns(ddb_server, ddb, table):
    # API_DescribeTable.html, API_TableDescription.html, API_StreamSpecification.html
    put_new(table, order_item(new_id()))
    t = ddb.describe_table(TableName="orders")["Table"]
    assert t["TableName"] == "orders"
    assert t["TableStatus"] == "ACTIVE"
    assert t["KeySchema"] == [{"AttributeName": "orderID", "KeyType": "HASH"}]
    assert t["AttributeDefinitions"] == [{"AttributeName": "orderID", "AttributeType": "S"}]
    assert t["TableArn"] == "arn:aws:dynamodb:us-east-1:000000000000:table/orders"
    assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert t["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert t["LatestStreamLabel"] == "1970-01-01T00:00:00.000"
    assert t["LatestStreamArn"] == t["TableArn"] + "/stream/" + t["LatestStreamLabel"]
    assert isinstance(t["CreationDateTime"], datetime.datetime)
    count = ddb.scan(TableName="orders", Select="COUNT")["Count"]
    assert t["ItemCount"] == count >= 1
    # The resource's waiter and attributes read the same answer.
    table.wait_until_exists()
    assert table.key_schema == t["KeySchema"]
    assert table.latest_stream_arn == t["LatestStreamArn"]
    # The table ARN names the table too.
    assert ddb.describe_table(TableName=t["TableArn"])["Table"]["TableName"] == "orders"


def test_list_tables_names_the_one_table(ddb):
    # API_ListTables.html
    assert ddb.list_tables()["TableNames"] == ["orders"]
    assert ddb.list_tables(ExclusiveStartTableName="orders")["TableNames"] == []
    assert ddb.list_tables(Limit=1)["TableNames"] == ["orders"]


def test_any_other_table_is_resource_not_found(ddb):
    # API_GetItem.html#API_GetItem_Errors (and each operation's): ResourceNotFoundException
    calls = [
        lambda: ddb.describe_table(TableName="nope"),
        lambda: ddb.get_item(TableName="nope", Key={"orderID": {"S": "x"}}),
        lambda: ddb.scan(TableName="nope"),
        lambda: ddb.query(TableName="nope", KeyConditionExpression="orderID = :v",
                          ExpressionAttributeValues={":v": {"S": "x"}}),
        lambda: ddb.put_item(TableName="nope", Item={"orderID": {"S": "x"}},
                             ConditionExpression="attribute_not_exists(orderID)"),
        lambda: ddb.batch_get_item(RequestItems={"nope": {"Keys": [{"orderID": {"S": "x"}}]}}),
    ]
    for call in calls:
        with pytest.raises(ddb.exceptions.ResourceNotFoundException) as e:
            call()
        assert code(e.value) == ("ResourceNotFoundException", 400)
        assert e.value.response["Error"]["Message"] == "Requested resource not found"


def test_errors_have_dynamodbs_wire_shape(ddb_server):
    # Programming.Errors.html: {"__type": "com.amazonaws.dynamodb.v20120810#<Code>", "message": ...}
    status, headers, body = raw(ddb_server, "GetItem", {"TableName": "nope", "Key": {"orderID": {"S": "x"}}})
    assert status == 400
    assert body == {"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                    "message": "Requested resource not found"}
    assert headers["content-type"] == "application/x-amz-json-1.0"
    # SQS's query-compatibility header belongs to SQS only.
    assert "x-amzn-query-error" not in headers
    assert headers["x-amzn-requestid"]
    status, _, body = raw(ddb_server, "GetItem", {"TableName": "orders", "Key": {"id": {"S": "x"}}})
    assert (status, body["__type"]) == (400, "com.amazonaws.dynamodb.v20120810#ValidationException")
    status, _, body = raw(ddb_server, "GetItem", {"TableName": "orders", "Key": "not a map"})
    assert (status, body["__type"]) == (400, "com.amazon.coral.service#SerializationException")


def test_an_unknown_operation_is_unknown_operation_exception(ddb_server, ddb):
    # Programming.Errors.html; DeleteTable exists in DynamoDB but not on this server's table.
    with pytest.raises(ClientError) as e:
        ddb.delete_table(TableName="orders")
    assert code(e.value) == ("UnknownOperationException", 400)
    status, _, body = raw(ddb_server, "Frobnicate", {})
    assert (status, body["__type"]) == (400, "com.amazon.coral.service#UnknownOperationException")


# ---------------------------------------------------------------- reads


def test_an_order_posted_to_the_rest_api_is_readable_with_get_item(ddb_server, table):
    # API_GetItem.html: Item holds the attributes DynamoDbOrderTable reads (crates/aws/src/table.rs)
    order_id = new_id("rest")
    status, _ = ddb_server.http("POST", "/orders", order(order_id))
    assert status == 202
    item = wait_for(lambda: table.get_item(Key={"orderID": order_id}, ConsistentRead=True).get("Item"))
    assert item["orderID"] == order_id
    assert item["items"] == [{"sku": "A-1", "quantity": Decimal(2), "unitPrice": Decimal("1.5")}]
    assert item["total"] == Decimal(3)
    assert item["status"] == "STORED"
    assert item["shippingAddress"]["city"] == "Berlin"
    assert re.fullmatch(r"[0-9a-f]{64}", item["contentHash"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", item["storedAt"])
    _, rest = ddb_server.http("GET", f"/orders/{order_id}")
    assert item["receivedAt"] == rest["receivedAt"]


def test_get_item_of_an_unknown_id_returns_no_item(ddb):
    # API_GetItem.html: "If there is no matching item, GetItem does not return any data"
    got = ddb.get_item(TableName="orders", Key={"orderID": {"S": new_id()}})
    assert "Item" not in got
    assert "Item" not in ddb.get_item(TableName="orders", Key={"orderID": {"S": "not/an id"}})


def test_get_item_projects_the_attributes_asked_for(ddb, table):
    # API_GetItem.html#DDB-GetItem-request-ProjectionExpression, ExpressionAttributeNames,
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ProjectionExpressions.html
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ReservedWords.html
    order_id = new_id()
    put_new(table, order_item(order_id))
    got = ddb.get_item(TableName="orders", Key={"orderID": {"S": order_id}},
                       ProjectionExpression="#t, orderID, #s", ExpressionAttributeNames={"#t": "total", "#s": "status"})
    assert got["Item"] == {"orderID": {"S": order_id}, "total": {"N": "3.25"}, "status": {"S": "STORED"}}
    # Expressions.ProjectionExpressions.html: nested paths keep the item's nesting.
    got = ddb.get_item(TableName="orders", Key={"orderID": {"S": order_id}},
                       ProjectionExpression="#i[1].sku, shippingAddress.city", ExpressionAttributeNames={"#i": "items"})
    assert got["Item"] == {"items": {"L": [{"M": {"sku": {"S": "B-2"}}}]},
                           "shippingAddress": {"M": {"city": {"S": "Berlin"}}}}
    with pytest.raises(ClientError) as e:
        ddb.get_item(TableName="orders", Key={"orderID": {"S": order_id}}, ProjectionExpression="orderID",
                     ExpressionAttributeNames={"#unused": "total"})
    assert code(e.value) == ("ValidationException", 400)
    assert "unused in expressions: keys: {#unused}" in e.value.response["Error"]["Message"]
    # ReservedWords.html: `total` and `status` are reserved, so DynamoDB wants them as #names.
    with pytest.raises(ClientError) as e:
        ddb.get_item(TableName="orders", Key={"orderID": {"S": order_id}}, ProjectionExpression="orderID, total")
    assert code(e.value) == ("ValidationException", 400)
    assert e.value.response["Error"]["Message"] == \
        "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: total"


def test_get_item_with_a_key_that_is_not_the_schemas_is_a_validation_error(ddb):
    # API_GetItem.html#DDB-GetItem-request-Key: "you must provide all of the attributes ... of the primary key"
    for key in ({"id": {"S": "x"}}, {"orderID": {"N": "1"}}, {"orderID": {"S": "x"}, "more": {"S": "y"}}):
        with pytest.raises(ClientError) as e:
            ddb.get_item(TableName="orders", Key=key)
        assert code(e.value) == ("ValidationException", 400)
        assert e.value.response["Error"]["Message"] == "The provided key element does not match the schema"


def test_batch_get_item_returns_the_stored_items_and_leaves_nothing_unprocessed(ddb, table):
    # API_BatchGetItem.html: Responses by table name, UnprocessedKeys, at most 100 keys, no duplicates
    ids = [new_id("batch") for _ in range(3)]
    for i in ids[:2]:
        put_new(table, order_item(i))
    got = ddb.batch_get_item(RequestItems={"orders": {
        "Keys": [{"orderID": {"S": i}} for i in ids], "ProjectionExpression": "orderID, currency"}})
    assert sorted(got["Responses"]["orders"], key=lambda i: i["orderID"]["S"]) == sorted(
        [{"orderID": {"S": i}, "currency": {"S": "EUR"}} for i in ids[:2]], key=lambda i: i["orderID"]["S"])
    assert got["UnprocessedKeys"] == {}
    with pytest.raises(ClientError) as e:
        ddb.batch_get_item(RequestItems={"orders": {"Keys": [{"orderID": {"S": f"k{i}"}} for i in range(101)]}})
    assert code(e.value) == ("ValidationException", 400)
    assert "Too many items requested for the BatchGetItem call" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        ddb.batch_get_item(RequestItems={"orders": {"Keys": [{"orderID": {"S": ids[0]}}] * 2}})
    assert e.value.response["Error"]["Message"] == "Provided list of item keys contains duplicates"
    # The resource's batch reader does the same through the client.
    res = table.meta.client.batch_get_item(RequestItems={"orders": {"Keys": [{"orderID": ids[0]}]}})
    assert res["Responses"]["orders"][0]["total"] == Decimal("3.25")


def test_query_on_the_key_returns_the_order_or_nothing(ddb, table):
    # API_Query.html: KeyConditionExpression "partitionKeyName = :partitionkeyval"; Select COUNT
    order_id = new_id("query")
    put_new(table, order_item(order_id))
    got = table.query(KeyConditionExpression=Key("orderID").eq(order_id))
    assert [i["orderID"] for i in got["Items"]] == [order_id]
    assert (got["Count"], got["ScannedCount"]) == (1, 1)
    got = ddb.query(TableName="orders", KeyConditionExpression="orderID = :v",
                    ExpressionAttributeValues={":v": {"S": new_id()}})
    assert (got["Items"], got["Count"]) == ([], 0)
    got = ddb.query(TableName="orders", KeyConditionExpression="orderID = :v", Select="COUNT",
                    ExpressionAttributeValues={":v": {"S": order_id}})
    assert got["Count"] == 1 and "Items" not in got
    with pytest.raises(ClientError) as e:
        table.query(KeyConditionExpression=Key("customerId").eq("c-ddb"))
    assert code(e.value) == ("ValidationException", 400)
    assert "Query condition missed key schema element: orderID" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        table.query(KeyConditionExpression=Key("orderID").begins_with("ddb"))
    assert code(e.value) == ("ValidationException", 400)


def test_the_scan_paginator_visits_every_order_once(ddb, table):
    # API_Scan.html: Limit, ExclusiveStartKey, LastEvaluatedKey, Count/ScannedCount, Select COUNT
    mine = {new_id("scan") for _ in range(5)}
    for i in mine:
        put_new(table, order_item(i))
    seen, pages = [], 0
    for page in ddb.get_paginator("scan").paginate(TableName="orders", PaginationConfig={"PageSize": 2}):
        pages += 1
        assert page["Count"] == page["ScannedCount"] == len(page["Items"]) <= 2
        seen += [i["orderID"]["S"] for i in page["Items"]]
    assert len(seen) == len(set(seen)), "no order twice"
    assert mine <= set(seen)
    assert len(seen) == ddb.describe_table(TableName="orders")["Table"]["ItemCount"]
    assert pages == (len(seen) + 1) // 2
    first = ddb.scan(TableName="orders", Limit=1)
    assert first["LastEvaluatedKey"] == {"orderID": first["Items"][0]["orderID"]}
    second = ddb.scan(TableName="orders", Limit=1, ExclusiveStartKey=first["LastEvaluatedKey"])
    assert second["Items"][0]["orderID"]["S"] > first["Items"][0]["orderID"]["S"]
    everything = ddb.scan(TableName="orders")
    assert "LastEvaluatedKey" not in everything
    assert ddb.scan(TableName="orders", Select="COUNT")["Count"] == len(seen)
    # The resource's scan reads the same items, numbers as Decimals.
    items = table.scan(ProjectionExpression="orderID, #t", ExpressionAttributeNames={"#t": "total"})["Items"]
    assert {i["orderID"]: i["total"] for i in items if i["orderID"] in mine} == {i: Decimal("3.25") for i in mine}


def test_scan_and_query_filter_the_items_they_read(ddb, table):
    # API_Scan.html#DDB-Scan-request-FilterExpression: the filter applies after the read, so
    # ScannedCount counts items read and Count those that matched;
    # Expressions.OperatorsAndFunctions.html for the condition syntax.
    customer = new_id("cust")
    dear = {new_id("filter") for _ in range(2)}
    cheap = new_id("filter")
    for i in dear:
        put_new(table, order_item(i, customerId=customer, items=[{"sku": "Z", "quantity": 4, "unitPrice": Decimal("10")}],
                                  total=Decimal("40")))
    put_new(table, order_item(cheap, customerId=customer))
    condition = Attr("customerId").eq(customer) & Attr("total").gt(Decimal("39.99")) & Attr("items").size().eq(1)
    found, scanned, read = set(), 0, 0
    for page in ddb.get_paginator("scan").paginate(
            TableName="orders", FilterExpression="customerId = :c AND #t > :min AND size(#i) = :one",
            ExpressionAttributeNames={"#t": "total", "#i": "items"},
            ExpressionAttributeValues={":c": {"S": customer}, ":min": {"N": "39.99"}, ":one": {"N": "1"}},
            PaginationConfig={"PageSize": 3}):
        found |= {i["orderID"]["S"] for i in page["Items"]}
        assert page["Count"] == len(page["Items"]) <= page["ScannedCount"] <= 3
        scanned += page["Count"]
        read += page["ScannedCount"]
    assert found == dear and scanned == 2
    assert read == ddb.describe_table(TableName="orders")["Table"]["ItemCount"]
    # The resource builds the same kind of expression from Attr conditions.
    items = table.scan(FilterExpression=condition)["Items"]
    assert {i["orderID"] for i in items} == dear
    got = table.query(KeyConditionExpression=Key("orderID").eq(cheap), FilterExpression=Attr("currency").eq("USD"))
    assert (got["Count"], got["ScannedCount"], got["Items"]) == (0, 1, [])
    with pytest.raises(ClientError) as e:
        table.query(KeyConditionExpression=Key("orderID").eq(cheap), FilterExpression=Attr("orderID").eq(cheap))
    assert "Filter Expression can only contain non-primary key attributes" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        ddb.scan(TableName="orders", FilterExpression="begins_with(currency, :n)", ExpressionAttributeValues={":n": {"N": "1"}})
    assert code(e.value) == ("ValidationException", 400)
    assert "operand type: N" in e.value.response["Error"]["Message"]


def test_an_index_or_a_segment_out_of_bounds_is_refused_with_the_reason(ddb_server, ddb):
    # API_Scan.html#DDB-Scan-request-IndexName: ValidationException for an index the table lacks
    with pytest.raises(ClientError) as e:
        ddb.scan(TableName="orders", IndexName="byCustomer")
    assert code(e.value) == ("ValidationException", 400)
    # API_Scan.html#DDB-Scan-request-Segment: Segment is zero-based, below TotalSegments.
    with pytest.raises(ClientError) as e:
        ddb.scan(TableName="orders", Segment=4, TotalSegments=4)
    assert "Segment: 4 is out of bounds given TotalSegments: 4" in e.value.response["Error"]["Message"]
    # boto3 checks Limit >= 1 itself; the server checks it too.
    status, _, body = raw(ddb_server, "Scan", {"TableName": "orders", "Limit": 0})
    assert (status, body["__type"]) == (400, "com.amazonaws.dynamodb.v20120810#ValidationException")


# ---------------------------------------------------------------- PutItem


def test_a_put_order_is_stored_and_announced_to_subscribers(ddb_server, table):
    # API_PutItem.html#DDB-PutItem-request-ConditionExpression; the stream record is written with
    # the item (DynamoDB Streams, NEW_IMAGE), so the publish handler announces it.
    sqs = aws_client(ddb_server, "sqs")
    watch = sqs.get_queue_url(QueueName="ddb-watch")["QueueUrl"]
    order_id = new_id("put")
    assert "Attributes" not in put_new(table, order_item(order_id, total=Decimal("3.250")))
    status, rest = ddb_server.http("GET", f"/orders/{order_id}")
    assert status == 200 and rest["total"] == 3.25
    # HowItWorks.NamingRulesDataTypes.html#HowItWorks.DataTypes.Number: "Leading and trailing
    # zeroes are trimmed."
    raw_item = aws_client(ddb_server, "dynamodb").get_item(TableName="orders", Key={"orderID": {"S": order_id}})["Item"]
    assert raw_item["total"] == {"N": "3.25"}
    item = table.get_item(Key={"orderID": order_id})["Item"]
    assert item["customerId"] == "c-ddb"
    assert re.fullmatch(r"[0-9a-f]{64}", item["contentHash"])

    def announced():
        got = sqs.receive_message(QueueUrl=watch, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=watch, ReceiptHandle=m["ReceiptHandle"])
        return [m for m in got if order_id in m["Body"]]

    assert wait_for(announced)


def test_a_second_put_of_the_id_fails_the_condition_and_returns_the_stored_item(ddb, table):
    # API_PutItem.html#DDB-PutItem-request-ReturnValuesOnConditionCheckFailure and
    # API_PutItem.html#API_PutItem_Errors: ConditionalCheckFailedException carries Item when ALL_OLD
    order_id = new_id("twice")
    put_new(table, order_item(order_id))
    stored = ddb.get_item(TableName="orders", Key={"orderID": {"S": order_id}})["Item"]
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as e:
        put_new(table, order_item(order_id, customerId="someone-else", receivedAt="2026-11-29T23:00:00.000Z"))
    assert code(e.value) == ("ConditionalCheckFailedException", 400)
    assert e.value.response["Error"]["Message"] == "The conditional request failed"
    assert e.value.response["Item"] == stored
    # Without ALL_OLD the error carries no item; the stored order is unchanged either way.
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as e:
        table.put_item(Item=order_item(order_id), ConditionExpression="attribute_not_exists(orderID)")
    assert "Item" not in e.value.response
    assert ddb.get_item(TableName="orders", Key={"orderID": {"S": order_id}})["Item"] == stored


def test_a_put_that_could_overwrite_an_order_is_a_validation_error(ddb, table):
    # API_PutItem.html: DynamoDB would replace the item; orders are the system of record, so a put
    # without attribute_not_exists(orderID) is refused (a documented parity difference).
    order_id = new_id("uncond")
    for kwargs in ({}, {"ConditionExpression": Attr("orderID").exists()},
                   {"ConditionExpression": Attr("customerId").not_exists()}):
        with pytest.raises(ClientError) as e:
            table.put_item(Item=order_item(order_id), **kwargs)
        assert code(e.value) == ("ValidationException", 400)
        assert "attribute_not_exists(orderID)" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        table.put_item(Item=order_item(order_id), ConditionExpression=Attr("orderID").not_exists(),
                       ReturnValues="ALL_NEW")
    assert code(e.value) == ("ValidationException", 400)
    assert "Item" not in table.get_item(Key={"orderID": order_id})


def test_an_item_that_is_not_an_order_is_a_validation_error_that_says_why(ddb, table):
    # API_PutItem.html#API_PutItem_Errors: ValidationException
    cases = [
        (order_item(new_id(), colour="red"), "unknown attribute(s) colour"),
        (order_item(new_id(), total=Decimal("99")), "total is 99 but the items sum to 3.25"),
        (order_item(new_id(), items=[]), "items"),
        (order_item(new_id(), contentHash="00"), "contentHash"),
        ({"orderID": new_id()}, "not an order item"),
    ]
    for item, why in cases:
        with pytest.raises(ClientError) as e:
            put_new(table, item)
        assert code(e.value) == ("ValidationException", 400), item
        assert why in e.value.response["Error"]["Message"], e.value.response["Error"]["Message"]
        assert "Item" not in table.get_item(Key={"orderID": item["orderID"]})
    with pytest.raises(ClientError) as e:
        ddb.put_item(TableName="orders", Item={"orderID": {"N": "5"}}, ConditionExpression="attribute_not_exists(orderID)")
    assert "Type mismatch for key orderID expected: S actual: N" in e.value.response["Error"]["Message"]


# ---------------------------------------------------------------- SigV4


def test_with_an_api_key_reads_and_puts_must_be_signed_with_it(keyed_server):
    # Programming.Errors.html: UnrecognizedClientException, InvalidSignatureException,
    # MissingAuthenticationTokenException (400)
    ok = aws_client(keyed_server, "dynamodb", access_key="team-a", secret=API_KEY, region="eu-west-1")
    assert ok.describe_table(TableName="orders")["Table"]["TableArn"] == \
        "arn:aws:dynamodb:eu-west-1:123456789012:table/orders"
    assert "Item" not in ok.get_item(TableName="orders", Key={"orderID": {"S": "nobody"}})
    signed = aws_resource(keyed_server, "dynamodb", access_key="team-a", secret=API_KEY, region="eu-west-1")
    order_id = new_id("keyed")
    put_new(signed.Table("orders"), order_item(order_id))
    assert ok.get_item(TableName="orders", Key={"orderID": {"S": order_id}})["Item"]["orderID"] == {"S": order_id}
    wrong = aws_client(keyed_server, "dynamodb", access_key="team-a", secret="wrong", region="eu-west-1")
    with pytest.raises(ClientError) as e:
        wrong.put_item(TableName="orders", Item={"orderID": {"S": new_id()}},
                       ConditionExpression="attribute_not_exists(orderID)")
    assert code(e.value) == ("InvalidSignatureException", 400)
    with pytest.raises(ClientError) as e:
        wrong.get_item(TableName="orders", Key={"orderID": {"S": "nobody"}})
    assert code(e.value) == ("InvalidSignatureException", 400)
    stranger = aws_client(keyed_server, "dynamodb", access_key="someone", secret=API_KEY, region="eu-west-1")
    with pytest.raises(ClientError) as e:
        stranger.scan(TableName="orders")
    assert code(e.value) == ("UnrecognizedClientException", 400)
    status, _, body = raw(keyed_server, "Scan", {"TableName": "orders"})
    assert (status, body["__type"]) == (400, "com.amazon.coral.service#MissingAuthenticationTokenException")


# ---------------------------------------------------------------- the AWS CLI


AWS = str(pathlib.Path(sys.executable).parent / "aws")


def aws_cli(server, *args, access_key="anything", secret="anything", region="us-east-1"):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_DEFAULT_REGION=region, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return subprocess.run([AWS, "--endpoint-url", server.url, "--output", "json", "dynamodb", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_the_cli_describes_the_table_puts_gets_and_scans(ddb_server):
    # API_DescribeTable.html, API_PutItem.html, API_GetItem.html, API_Scan.html through `aws dynamodb`
    described = aws_cli(ddb_server, "describe-table", "--table-name", "orders")
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["Table"]["KeySchema"] == [{"AttributeName": "orderID", "KeyType": "HASH"}]
    order_id = new_id("cli")
    wire = {
        "orderID": {"S": order_id}, "customerId": {"S": "c-cli"}, "currency": {"S": "EUR"},
        "items": {"L": [{"M": {"sku": {"S": "A-1"}, "quantity": {"N": "2"}, "unitPrice": {"N": "1.5"}}}]},
        "total": {"N": "3"}, "status": {"S": "STORED"},
        "receivedAt": {"S": "2026-11-29T22:00:00.000Z"}, "storedAt": {"S": "2026-11-29T22:00:00.000Z"},
    }
    put = aws_cli(ddb_server, "put-item", "--table-name", "orders", "--item", json.dumps(wire),
                  "--condition-expression", "attribute_not_exists(orderID)")
    assert put.returncode == 0, put.stderr
    again = aws_cli(ddb_server, "put-item", "--table-name", "orders", "--item", json.dumps(wire),
                    "--condition-expression", "attribute_not_exists(orderID)")
    assert again.returncode != 0
    assert "ConditionalCheckFailedException" in again.stderr, again.stderr
    got = aws_cli(ddb_server, "get-item", "--table-name", "orders", "--key", json.dumps({"orderID": {"S": order_id}}))
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["Item"]["customerId"] == {"S": "c-cli"}
    # The CLI follows LastEvaluatedKey itself: a page size of 1 still lists every order.
    scanned = aws_cli(ddb_server, "scan", "--table-name", "orders", "--page-size", "1")
    assert scanned.returncode == 0, scanned.stderr
    ids = [i["orderID"]["S"] for i in json.loads(scanned.stdout)["Items"]]
    assert order_id in ids and len(ids) == len(set(ids))
    count = json.loads(aws_cli(ddb_server, "scan", "--table-name", "orders", "--select", "COUNT").stdout)["Count"]
    assert count == len(ids)


def test_the_cli_reports_dynamodbs_errors(ddb_server, keyed_server):
    # Programming.Errors.html: the CLI prints the error code it parsed from __type
    missing = aws_cli(ddb_server, "get-item", "--table-name", "nope", "--key", '{"orderID": {"S": "x"}}')
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr, missing.stderr
    bad_key = aws_cli(ddb_server, "get-item", "--table-name", "orders", "--key", '{"id": {"S": "x"}}')
    assert "ValidationException" in bad_key.stderr, bad_key.stderr
    signed = aws_cli(keyed_server, "scan", "--table-name", "orders", "--select", "COUNT",
                     access_key="team-a", secret=API_KEY, region="eu-west-1")
    assert signed.returncode == 0, signed.stderr
    wrong = aws_cli(keyed_server, "scan", "--table-name", "orders",
                    access_key="team-a", secret="wrong", region="eu-west-1")
    assert "InvalidSignatureException" in wrong.stderr, wrong.stderr


def test_the_readmes_dynamodb_commands_run_as_written(ddb_server):
    # The README's DynamoDB CLI block, with only the endpoint changed to this test server's.
    text = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"<!-- awsapi-dynamodb-cli -->\n```sh\n(.*?)```", text, re.S).group(1)
    assert "http://127.0.0.1:8080" in block
    status, _ = ddb_server.http("POST", "/orders", order("ord-1001"))
    assert status in (202, 200), status
    table = aws_resource(ddb_server, "dynamodb").Table("orders")
    wait_for(lambda: table.get_item(Key={"orderID": "ord-1001"}).get("Item"))
    env = dict(os.environ, AWS_ACCESS_KEY_ID="orderflow", AWS_SECRET_ACCESS_KEY="anything",
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               PATH=str(pathlib.Path(AWS).parent) + os.pathsep + os.environ["PATH"])
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", block.replace("http://127.0.0.1:8080", ddb_server.url)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"KeySchema"' in out.stdout and '"ord-1001"' in out.stdout and '"Count"' in out.stdout


def test_every_answer_carries_the_crc32_of_its_body_which_botocore_checks(ddb_server):
    # DynamoDB sends x-amz-crc32, the CRC32 of the body (the Go SDK's DynamoDB customizations:
    # https://pkg.go.dev/github.com/aws/aws-sdk-go-v2/service/dynamodb/internal/customizations),
    # and botocore checks it when present: in legacy retry mode retryhandler.CRC32Checker
    # raises ChecksumError on a mismatch, which with one attempt fails the call; in standard
    # mode retries.special.RetryDDBChecksumError retries it.
    ddb = boto3.client("dynamodb", endpoint_url=ddb_server.url, region_name=REGION,
                       aws_access_key_id="anything", aws_secret_access_key="anything",
                       config=Config(retries={"mode": "legacy", "total_max_attempts": 1}))
    raw = []
    ddb.meta.events.register("after-call.dynamodb", lambda http_response, **_: raw.append(http_response))
    answered = ddb.describe_table(TableName="orders")
    assert answered["ResponseMetadata"]["RetryAttempts"] == 0
    with pytest.raises(ddb.exceptions.ResourceNotFoundException):
        ddb.describe_table(TableName="no-such-table")
    ddb.get_item(TableName="orders", Key={"orderID": {"S": new_id()}})
    assert len(raw) == 3
    for response in raw:
        assert int(response.headers["x-amz-crc32"]) == binascii.crc32(response.content), response.headers
