"""boto3's `dynamodbstreams` client and the AWS CLI (clients we did not write) read the
`orders` table's stream from `orderflow serve`, as a downstream team reads DynamoDB Streams.

What each test relies on is DynamoDB Streams' documented behaviour:
- the operations, their parameters and errors:
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Operations_Amazon_DynamoDB_Streams.html
- ListStreams: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_ListStreams.html
- DescribeStream: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_DescribeStream.html
- GetShardIterator (iterator types, TrimmedDataAccessException, 15-minute expiry):
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetShardIterator.html
- GetRecords (Limit up to 1000, NextShardIterator, ExpiredIteratorException):
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_GetRecords.html
- the Record and StreamRecord shapes (SequenceNumber of 21 to 40 digits, creation time in
  epoch seconds): https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_Record.html,
  https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_streams_StreamRecord.html
- errors of the JSON protocol (`__type` ending in the error's name, `message`):
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
"""

import datetime
import decimal
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import uuid

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config
from botocore.exceptions import ClientError

import conftest
from conftest import API_KEY, REGION, Server, order, wait_for

STREAM_ARN = "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/1970-01-01T00:00:00.000"


@pytest.fixture
def stream_server():
    """A server of its own: its stream holds exactly the orders the test posts."""
    s = Server()
    yield s
    s.stop()


def streams_client(server, access_key="anything", secret="anything", region=REGION):
    return boto3.client(
        "dynamodbstreams", endpoint_url=server.url, region_name=region,
        aws_access_key_id=access_key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def post_stored(server, *order_ids):
    """Posts each order and waits until it is stored, so commit order is posting order."""
    for order_id in order_ids:
        status, body = server.http("POST", "/orders", order(order_id))
        assert status == 202, body
        wait_for(lambda: server.http("GET", f"/orders/{order_id}")[0] == 200)


def shard_id(client):
    return client.describe_stream(StreamArn=STREAM_ARN)["StreamDescription"]["Shards"][0]["ShardId"]


def iterator(client, kind, sequence=None):
    extra = {} if sequence is None else {"SequenceNumber": sequence}
    return client.get_shard_iterator(StreamArn=STREAM_ARN, ShardId=shard_id(client),
                                     ShardIteratorType=kind, **extra)["ShardIterator"]


def read_all(client, it, limit=None):
    """Pages through GetRecords until a page comes back empty; returns the records and the
    iterator to continue from."""
    records = []
    for _ in range(100):
        page = client.get_records(ShardIterator=it, **({} if limit is None else {"Limit": limit}))
        it = page["NextShardIterator"]
        if not page["Records"]:
            return records, it
        if limit is not None:
            assert len(page["Records"]) <= limit
        records += page["Records"]
    raise AssertionError("GetRecords never ran out of records")


def order_ids(records):
    return [r["dynamodb"]["Keys"]["orderID"]["S"] for r in records]


def error(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def plain(value):
    """An item or an order as plain JSON values, numbers as exact decimals."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        return decimal.Decimal(str(value)).normalize()
    return value


# ---------------------------------------------------------------- streams


def test_list_streams_names_the_orders_tables_one_stream_and_filters_by_table(stream_server):
    client = streams_client(stream_server)
    expected = [{"StreamArn": STREAM_ARN, "TableName": "orders", "StreamLabel": "1970-01-01T00:00:00.000"}]
    assert client.list_streams()["Streams"] == expected
    assert client.list_streams(TableName="orders")["Streams"] == expected
    assert client.list_streams(ExclusiveStartStreamArn=STREAM_ARN)["Streams"] == []
    # ListStreams raises ResourceNotFoundException for "a nonexistent table" (API_streams_ListStreams.html).
    with pytest.raises(ClientError) as e:
        client.list_streams(TableName="no-such-table")
    assert error(e) == ("ResourceNotFoundException", 400)


def test_describe_stream_gives_the_new_image_stream_its_key_schema_and_one_open_shard(stream_server):
    client = streams_client(stream_server)
    post_stored(stream_server, "ds-1")
    description = client.describe_stream(StreamArn=STREAM_ARN)["StreamDescription"]
    assert description["StreamArn"] == STREAM_ARN
    assert description["StreamLabel"] == "1970-01-01T00:00:00.000"
    assert description["StreamStatus"] == "ENABLED"
    assert description["StreamViewType"] == "NEW_IMAGE"
    assert description["TableName"] == "orders"
    assert description["KeySchema"] == [{"AttributeName": "orderID", "KeyType": "HASH"}]
    [shard] = description["Shards"]
    # An open shard has a starting sequence number and no ending one.
    assert shard["SequenceNumberRange"] == {"StartingSequenceNumber": "000000000000000000001"}
    assert shard["ShardId"].startswith("shardId-")
    assert shard_id(client) == shard["ShardId"]
    assert client.describe_stream(StreamArn=STREAM_ARN, ExclusiveStartShardId=shard["ShardId"])[
        "StreamDescription"]["Shards"] == []
    # The one shard never splits: it has no child shards.
    assert client.describe_stream(StreamArn=STREAM_ARN, ShardFilter={"Type": "CHILD_SHARDS", "ShardId": shard["ShardId"]})[
        "StreamDescription"]["Shards"] == []
    with pytest.raises(ClientError) as e:
        client.describe_stream(StreamArn=STREAM_ARN.replace("orders", "other"))
    assert error(e) == ("ResourceNotFoundException", 400)


# ---------------------------------------------------------------- records


def test_trim_horizon_reads_exactly_the_new_orders_in_commit_order_with_their_stored_items(stream_server):
    client = streams_client(stream_server)
    ids = ["th-1", "th-2", "th-3"]
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    post_stored(stream_server, *ids)
    records, _ = read_all(client, iterator(client, "TRIM_HORIZON"))
    assert order_ids(records) == ids
    sequences = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert all(s.isdigit() and len(s) >= 21 for s in sequences)
    assert [int(s) for s in sequences] == sorted(int(s) for s in sequences)
    assert len({r["eventID"] for r in records}) == 3
    for record, order_id in zip(records, ids):
        assert {k: v for k, v in record.items() if k not in ("eventID", "dynamodb")} == {
            "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": REGION}
        change = record["dynamodb"]
        assert change["Keys"] == {"orderID": {"S": order_id}}
        assert change["StreamViewType"] == "NEW_IMAGE"
        assert change["SizeBytes"] > 0
        # botocore parses the epoch seconds into a datetime; DynamoDB rounds them down.
        created = change["ApproximateCreationDateTime"]
        assert before <= created <= datetime.datetime.now(datetime.timezone.utc)
        assert created.microsecond == 0
        image = {k: TypeDeserializer().deserialize(v) for k, v in change["NewImage"].items()}
        status, stored = stream_server.http("GET", f"/orders/{order_id}")
        assert status == 200
        assert plain(image) == plain(stored)


def test_latest_reads_only_what_is_stored_after_it(stream_server):
    client = streams_client(stream_server)
    post_stored(stream_server, "old-1")
    it = iterator(client, "LATEST")
    page = client.get_records(ShardIterator=it)
    assert page["Records"] == []
    post_stored(stream_server, "new-1", "new-2")
    records, _ = read_all(client, page["NextShardIterator"])
    assert order_ids(records) == ["new-1", "new-2"]


def test_at_and_after_a_sequence_number_start_at_and_after_that_record(stream_server):
    client = streams_client(stream_server)
    post_stored(stream_server, "sq-1", "sq-2", "sq-3")
    records, _ = read_all(client, iterator(client, "TRIM_HORIZON"))
    second = records[1]["dynamodb"]["SequenceNumber"]
    assert order_ids(read_all(client, iterator(client, "AT_SEQUENCE_NUMBER", second))[0]) == ["sq-2", "sq-3"]
    assert order_ids(read_all(client, iterator(client, "AFTER_SEQUENCE_NUMBER", second))[0]) == ["sq-3"]
    last = records[2]["dynamodb"]["SequenceNumber"]
    assert read_all(client, iterator(client, "AFTER_SEQUENCE_NUMBER", last))[0] == []


def test_limit_pages_through_the_records_one_at_a_time(stream_server):
    client = streams_client(stream_server)
    post_stored(stream_server, "pg-1", "pg-2", "pg-3")
    it = iterator(client, "TRIM_HORIZON")
    seen = []
    for _ in range(3):
        page = client.get_records(ShardIterator=it, Limit=1)
        assert len(page["Records"]) == 1
        seen += order_ids(page["Records"])
        it = page["NextShardIterator"]
    assert seen == ["pg-1", "pg-2", "pg-3"]
    assert client.get_records(ShardIterator=it, Limit=1000)["Records"] == []
    # "The upper limit is 1000."
    with pytest.raises(ClientError) as e:
        client.get_records(ShardIterator=it, Limit=1001)
    assert error(e) == ("ValidationException", 400)


def test_reading_the_stream_consumes_nothing_and_the_topic_still_announces_every_order(stream_server):
    client = streams_client(stream_server)
    status, _ = stream_server.http("POST", "/subscriptions", {"protocol": "queue", "endpoint": "watch"})
    assert status == 201
    post_stored(stream_server, "rd-1", "rd-2")
    first, _ = read_all(client, iterator(client, "TRIM_HORIZON"))
    again, _ = read_all(client, iterator(client, "TRIM_HORIZON"))
    assert first == again
    assert order_ids(first) == ["rd-1", "rd-2"]
    sqs = stream_server.client()
    url = f"{stream_server.url}/000000000000/watch"
    bodies = []
    for _ in range(20):
        bodies += [m["Body"] for m in
                   sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])]
        if len(bodies) >= 2:
            break
    assert len(bodies) == 2
    assert [order_id for order_id in ("rd-1", "rd-2") if any(order_id in b for b in bodies)] == ["rd-1", "rd-2"]


# ---------------------------------------------------------------- errors


def test_a_shard_iterator_that_this_stream_did_not_issue_is_a_validation_error(stream_server):
    client = streams_client(stream_server)
    for bad in ("not-an-iterator", STREAM_ARN + "|1|AAAA"):
        with pytest.raises(ClientError) as e:
            client.get_records(ShardIterator=bad)
        assert error(e) == ("ValidationException", 400)


def test_an_unknown_stream_or_shard_is_not_found(stream_server):
    client = streams_client(stream_server)
    with pytest.raises(ClientError) as e:
        client.get_shard_iterator(StreamArn=STREAM_ARN, ShardId="shardId-00000000000000000009-00000000",
                                  ShardIteratorType="LATEST")
    assert error(e) == ("ResourceNotFoundException", 400)
    with pytest.raises(ClientError) as e:
        client.get_shard_iterator(StreamArn=STREAM_ARN.replace("us-east-1", "eu-west-1"),
                                  ShardId=shard_id(client), ShardIteratorType="LATEST")
    assert error(e) == ("ResourceNotFoundException", 400)


def test_a_sequence_number_beyond_the_shard_or_missing_is_a_validation_error(stream_server):
    client = streams_client(stream_server)
    post_stored(stream_server, "vs-1")
    for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
        with pytest.raises(ClientError) as e:
            iterator(client, kind, "000000000000000000099")
        assert error(e) == ("ValidationException", 400)
        with pytest.raises(ClientError) as e:
            iterator(client, kind)
        assert error(e) == ("ValidationException", 400)


def test_retention_trims_old_records_and_trim_horizon_starts_at_the_oldest_kept():
    # Records older than 4 s that the publisher has passed are pruned, checked every second.
    server = Server("--stream-retention", "4s", "--retention-interval", "1s")
    try:
        client = streams_client(server)
        before_any = iterator(client, "TRIM_HORIZON")
        post_stored(server, "rt-old")
        [old], _ = read_all(client, iterator(client, "TRIM_HORIZON"))
        old_seq = old["dynamodb"]["SequenceNumber"]

        def trimmed():
            try:
                iterator(client, "AT_SEQUENCE_NUMBER", old_seq)
                return False
            except ClientError as e:
                return e.response["Error"]["Code"] == "TrimmedDataAccessException"

        wait_for(trimmed, timeout=20, interval=0.5)
        # An iterator issued before the record was trimmed would now skip it.
        with pytest.raises(ClientError) as e:
            client.get_records(ShardIterator=before_any)
        assert error(e) == ("TrimmedDataAccessException", 400)
        post_stored(server, "rt-new")
        records, _ = read_all(client, iterator(client, "TRIM_HORIZON"))
        assert order_ids(records) == ["rt-new"]
        assert int(records[0]["dynamodb"]["SequenceNumber"]) > int(old_seq)
        assert client.describe_stream(StreamArn=STREAM_ARN)["StreamDescription"]["Shards"][0][
            "SequenceNumberRange"]["StartingSequenceNumber"] == records[0]["dynamodb"]["SequenceNumber"]
    finally:
        server.stop()


def test_sequence_numbers_and_iterators_survive_a_restart(monkeypatch):
    first = Server()
    client = streams_client(first)
    post_stored(first, "rs-1", "rs-2")
    before, it = read_all(client, iterator(client, "TRIM_HORIZON"))
    first.proc.terminate()
    first.proc.wait(timeout=15)
    # The same data directory, opened by a new process.
    monkeypatch.setattr(conftest.tempfile, "mkdtemp", lambda prefix: first.dir)
    second = Server()
    try:
        client = streams_client(second)
        after, _ = read_all(client, iterator(client, "TRIM_HORIZON"))
        assert [(r["eventID"], r["dynamodb"]["SequenceNumber"]) for r in after] == [
            (r["eventID"], r["dynamodb"]["SequenceNumber"]) for r in before]
        post_stored(second, "rs-3")
        assert order_ids(read_all(client, it)[0]) == ["rs-3"]
    finally:
        second.stop()


# ---------------------------------------------------------------- signing, CLI


def test_with_an_api_key_the_stream_is_read_with_a_dynamodb_signature_made_with_it(keyed_server):
    client = streams_client(keyed_server, access_key="team-a", secret=API_KEY, region="eu-west-1")
    [stream] = client.list_streams()["Streams"]
    assert stream["StreamArn"] == "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/1970-01-01T00:00:00.000"
    wrong = streams_client(keyed_server, access_key="team-a", secret=API_KEY + "x", region="eu-west-1")
    with pytest.raises(ClientError) as e:
        wrong.list_streams()
    # DynamoDB Streams answers with DynamoDB's error protocol: a bad signature is
    # 400 InvalidSignatureException, not SQS's 403 SignatureDoesNotMatch.
    # https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
    assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    stranger = streams_client(keyed_server, access_key="someone", secret=API_KEY, region="eu-west-1")
    with pytest.raises(ClientError) as e:
        stranger.list_streams()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


AWS = str(pathlib.Path(sys.executable).parent / "aws")


def cli(server, *args):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="anything", AWS_SECRET_ACCESS_KEY="anything",
               AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return subprocess.run([AWS, "--endpoint-url", server.url, "--output", "json", "dynamodbstreams", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_the_cli_lists_describes_and_reads_the_stream(stream_server):
    order_id = f"cli-{uuid.uuid4().hex[:8]}"
    post_stored(stream_server, order_id)
    listed = cli(stream_server, "list-streams", "--table-name", "orders")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["Streams"][0]["StreamArn"] == STREAM_ARN
    described = cli(stream_server, "describe-stream", "--stream-arn", STREAM_ARN)
    assert described.returncode == 0, described.stderr
    shard = json.loads(described.stdout)["StreamDescription"]["Shards"][0]["ShardId"]
    got = cli(stream_server, "get-shard-iterator", "--stream-arn", STREAM_ARN, "--shard-id", shard,
              "--shard-iterator-type", "TRIM_HORIZON")
    assert got.returncode == 0, got.stderr
    records = cli(stream_server, "get-records", "--shard-iterator", json.loads(got.stdout)["ShardIterator"])
    assert records.returncode == 0, records.stderr
    [record] = json.loads(records.stdout)["Records"]
    assert record["dynamodb"]["NewImage"]["orderID"] == {"S": order_id}


def test_the_cli_reports_an_unknown_stream(stream_server):
    out = cli(stream_server, "describe-stream", "--stream-arn", STREAM_ARN.replace("orders", "nope"))
    assert out.returncode != 0
    assert "ResourceNotFoundException" in out.stderr, out.stderr


def test_the_readme_cli_commands_read_the_stream_as_written(stream_server):
    post_stored(stream_server, "readme-1")
    readme = pathlib.Path(__file__).resolve().parents[2] / "README.md"
    block = re.search(r"<!-- streams-example -->\n```sh\n(.*?)```", readme.read_text(), re.S).group(1)
    get_iterator, get_records = [shlex.split(line) for line in block.replace("\\\n", " ").splitlines()]
    for command in (get_iterator, get_records):
        assert command[:4] == ["aws", "--endpoint-url", "http://127.0.0.1:8080", "dynamodbstreams"]
    got = cli(stream_server, *get_iterator[4:])
    assert got.returncode == 0, got.stderr
    assert get_records[-1] == "<ShardIterator>"
    records = cli(stream_server, *get_records[4:-1], json.loads(got.stdout)["ShardIterator"])
    assert records.returncode == 0, records.stderr
    assert order_ids(json.loads(records.stdout)["Records"]) == ["readme-1"]
