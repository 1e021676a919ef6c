"""A hostile or careless client's DynamoDB requests: expressions at and past DynamoDB's
documented limits. Each is refused with a ValidationException and the server keeps serving.

Limits: "Expression parameters" in
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html
(an expression string is at most 4 KB; IN takes at most 100 operands).
"""

import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import aws_client, order, wait_for


@pytest.fixture
def ddb(ddb_server):
    return aws_client(ddb_server, "dynamodb")


def validation_message(call):
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.response["Error"]["Code"] == "ValidationException", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return e.value.response["Error"]["Message"]


def test_a_deeply_nested_filter_is_refused_and_the_server_keeps_serving(ddb):
    # 2000 parentheses (4 KB) once overflowed a worker's stack and aborted the server.
    v = {":v": {"S": "EUR"}}
    for hostile in ("(" * 2000 + "currency = :v" + ")" * 2000, "NOT " * 1000 + "currency = :v"):
        message = validation_message(
            lambda: ddb.scan(TableName="orders", FilterExpression=hostile,
                             ExpressionAttributeValues=v))
        assert "nests conditions more than 64 deep" in message
    assert ddb.describe_table(TableName="orders")["Table"]["TableStatus"] == "ACTIVE"


def test_an_expression_past_4_kb_is_refused(ddb):
    projection = ",".join(f"a{i}" for i in range(60000))
    message = validation_message(
        lambda: ddb.scan(TableName="orders", ProjectionExpression=projection))
    assert message == ("Invalid ProjectionExpression: Expression size has exceeded the maximum "
                       f"allowed size; expression size: {len(projection)}")
    condition = "currency = :v" + " " * 4096
    message = validation_message(
        lambda: ddb.query(TableName="orders", KeyConditionExpression="orderID = :k",
                          FilterExpression=condition,
                          ExpressionAttributeValues={":k": {"S": "o"}, ":v": {"S": "EUR"}}))
    assert message.startswith("Invalid FilterExpression: Expression size has exceeded")


def test_in_takes_at_most_100_operands(ddb):
    values = {f":v{i}": {"S": f"c{i}"} for i in range(101)}
    expression = "currency IN (" + ", ".join(values) + ")"
    message = validation_message(
        lambda: ddb.scan(TableName="orders", FilterExpression=expression,
                         ExpressionAttributeValues=values))
    assert message == ("Invalid FilterExpression: The IN operator is provided with too many "
                       "operands; number of operands: 101")
    del values[":v100"]
    expression = "currency IN (" + ", ".join(values) + ")"
    ddb.scan(TableName="orders", FilterExpression=expression, ExpressionAttributeValues=values)


# Numbers: up to 38 significant digits, magnitudes 1E-130 to 9.99...E+125, compared by value
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html#HowItWorks.DataTypes.Number).


def test_a_filter_compares_numbers_past_28_digits_by_value(ddb_server, ddb):
    order_id = "num-" + uuid.uuid4().hex[:12]
    status, _ = ddb_server.http("POST", "/orders", order(order_id))
    assert status == 202
    key = {"orderID": {"S": order_id}}
    wait_for(lambda: ddb.get_item(TableName="orders", Key=key).get("Item"))

    def matches(op, value):
        return ddb.query(TableName="orders", KeyConditionExpression="orderID = :k",
                         FilterExpression=f"#t {op} :v", ExpressionAttributeNames={"#t": "total"},
                         ExpressionAttributeValues={":k": key["orderID"], ":v": {"N": value}})["Count"]

    # 29 and 38 digits, and 1E+100, were once no number at all, so every comparison was false.
    for big in ("12345678901234567890123456789", "9" * 38, "1E+100"):
        assert matches("<", big) == 1, big
        assert matches(">", "-" + big) == 1, big
    assert matches("=", "3.000") == 1  # the order's total, 3, in another spelling


def test_a_number_dynamodb_cannot_hold_is_refused_in_its_words(ddb):
    for value, message in [
        ("abc", "A value provided cannot be converted into a number"),
        ("1" * 39, "Attempting to store more than 38 significant digits in a Number"),
        ("1E126", "Number overflow. Attempting to store a number with magnitude larger than "
                  "supported range"),
        ("1E-131", "Number underflow. Attempting to store a number with magnitude smaller than "
                   "supported range"),
    ]:
        got = validation_message(
            lambda: ddb.scan(TableName="orders", FilterExpression="#t = :v",
                             ExpressionAttributeNames={"#t": "total"},
                             ExpressionAttributeValues={":v": {"N": value}}))
        assert got == message, value


def test_a_put_whose_item_smuggles_a_nested_attribute_is_refused_not_stored_without_it(ddb):
    # API_PutItem.html: PutItem stores the item as sent. An extra key inside a map the order
    # has was once dropped without a word, the put answering 200.
    order_id = "smuggle-" + uuid.uuid4().hex[:12]
    item = {
        "orderID": {"S": order_id}, "customerId": {"S": "c-1"},
        "customerEmail": {"S": "a@example.com"},
        "items": {"L": [{"M": {"sku": {"S": "A-1"}, "quantity": {"N": "2"},
                               "unitPrice": {"N": "1.50"}}}]},
        "currency": {"S": "EUR"},
        "shippingAddress": {"M": {"line1": {"S": "1 Main St"}, "city": {"S": "Berlin"},
                                  "postalCode": {"S": "10115"}, "country": {"S": "DE"},
                                  "isAdmin": {"BOOL": True}}},
        "total": {"N": "3"}, "status": {"S": "STORED"},
        "receivedAt": {"S": "2026-11-29T22:00:00.000Z"},
        "storedAt": {"S": "2026-11-29T22:00:01.000Z"},
    }
    put = lambda: ddb.put_item(TableName="orders", Item=item,  # noqa: E731
                               ConditionExpression="attribute_not_exists(orderID)")
    message = validation_message(put)
    assert "unknown attribute(s) shippingAddress.isAdmin;" in message, message
    assert "Item" not in ddb.get_item(TableName="orders", Key={"orderID": {"S": order_id}})
    del item["shippingAddress"]["M"]["isAdmin"]
    put()  # the same order without it is stored; 1.50 is 1.5 as DynamoDB trims it
    stored = ddb.get_item(TableName="orders", Key={"orderID": {"S": order_id}})["Item"]
    assert stored["items"]["L"][0]["M"]["unitPrice"] == {"N": "1.5"}


def test_the_segments_of_a_parallel_scan_together_visit_every_order_once(ddb_server, ddb):
    # API_Scan.html#DDB-Scan-request-TotalSegments: the segments of a parallel scan split the
    # table between them; SDK parallel-scan code (boto3 recipes, the Java enhanced client)
    # was refused outright before.
    for i in range(12):
        status, _ = ddb_server.http("POST", "/orders", order(f"seg-{uuid.uuid4().hex[:10]}-{i}"))
        assert status == 202

    def ids(**kwargs):
        pages = ddb.get_paginator("scan").paginate(TableName="orders", ProjectionExpression="orderID",
                                                   PaginationConfig={"PageSize": 5}, **kwargs)
        return [item["orderID"]["S"] for page in pages for item in page["Items"]]

    wait_for(lambda: len([i for i in ids() if i.startswith("seg-")]) >= 12)
    everything = ids()
    segments = [ids(Segment=s, TotalSegments=4) for s in range(4)]
    together = [i for segment in segments for i in segment]
    assert sorted(together) == sorted(everything)
    assert len(set(together)) == len(together)
    assert sum(1 for segment in segments if segment) >= 2


def test_return_consumed_capacity_is_reported_in_the_shape_sdks_read(ddb_server, ddb):
    # API_ConsumedCapacity.html: with ReturnConsumedCapacity TOTAL (or INDEXES) every read and
    # write answers ConsumedCapacity (a list for BatchGetItem); code that reads
    # response["ConsumedCapacity"] for its metrics once failed with a KeyError.
    order_id = "cap-" + uuid.uuid4().hex[:12]
    status, _ = ddb_server.http("POST", "/orders", order(order_id))
    assert status == 202
    key = {"orderID": {"S": order_id}}
    wait_for(lambda: ddb.get_item(TableName="orders", Key=key).get("Item"))
    got = ddb.get_item(TableName="orders", Key=key, ReturnConsumedCapacity="TOTAL")
    assert got["ConsumedCapacity"] == {"TableName": "orders", "CapacityUnits": 0.5,
                                       "ReadCapacityUnits": 0.5}
    got = ddb.get_item(TableName="orders", Key=key, ConsistentRead=True,
                       ReturnConsumedCapacity="INDEXES")
    assert got["ConsumedCapacity"]["Table"] == {"CapacityUnits": 1.0, "ReadCapacityUnits": 1.0}
    got = ddb.query(TableName="orders", KeyConditionExpression="orderID = :k",
                    ExpressionAttributeValues={":k": key["orderID"]}, ReturnConsumedCapacity="TOTAL")
    assert got["ConsumedCapacity"]["CapacityUnits"] == 0.5
    assert ddb.scan(TableName="orders", Limit=1,
                    ReturnConsumedCapacity="TOTAL")["ConsumedCapacity"]["CapacityUnits"] > 0
    got = ddb.batch_get_item(RequestItems={"orders": {"Keys": [key]}}, ReturnConsumedCapacity="TOTAL")
    assert got["ConsumedCapacity"] == [{"TableName": "orders", "CapacityUnits": 0.5,
                                        "ReadCapacityUnits": 0.5}]
    assert "ConsumedCapacity" not in ddb.get_item(TableName="orders", Key=key)


def test_a_key_past_2048_bytes_is_refused_as_dynamodb_refuses_it(ddb):
    # Constraints.html#limits-partition-sort-keys: a partition key value is at most 2048 bytes
    # (the message, without a space before the number, is DynamoDB's as moto copies it).
    message = validation_message(
        lambda: ddb.get_item(TableName="orders", Key={"orderID": {"S": "x" * 2049}}))
    assert message == ("One or more parameter values were invalid: Size of hashkey has exceeded "
                       "the maximum size limit of2048 bytes")
    assert "Item" not in ddb.get_item(TableName="orders", Key={"orderID": {"S": "x" * 2048}})
