"""SigV4 on the AWS protocols, checked with boto3's own signer.

Without an API key any credentials are accepted (as local emulators do). With --api-key,
a request must be signed (AWS Signature Version 4,
https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) by the
configured access key id with the API key as the secret access key; otherwise SQS's own
authentication errors (403 InvalidClientTokenId / SignatureDoesNotMatch, in the JSON
protocol's error shape) come back.
"""

import pytest
from botocore.exceptions import ClientError

from conftest import API_KEY, error_code, raw_aws_request


def test_without_an_api_key_any_credentials_are_accepted(server):
    assert server.client(access_key="whoever", secret="whatever").list_queues()["QueueUrls"]


def test_with_an_api_key_a_request_signed_with_it_is_served(keyed_server):
    sqs = keyed_server.client(access_key="team-a", secret=API_KEY, region="eu-west-1")
    urls = sqs.list_queues()["QueueUrls"]
    assert urls[0] == f"{keyed_server.url}/123456789012/POC-Queue"
    attrs = sqs.get_queue_attributes(QueueUrl=urls[0], AttributeNames=["QueueArn"])["Attributes"]
    assert attrs["QueueArn"] == "arn:aws:sqs:eu-west-1:123456789012:POC-Queue"
    sent = sqs.send_message(QueueUrl=urls[1], MessageBody="signed")
    assert sent["MessageId"]


def test_a_wrong_secret_gets_signature_does_not_match(keyed_server):
    sqs = keyed_server.client(access_key="team-a", secret=API_KEY + "x", region="eu-west-1")
    with pytest.raises(ClientError) as e:
        sqs.list_queues()
    assert error_code(e.value) == ("SignatureDoesNotMatch", 403)


def test_an_unknown_access_key_id_gets_invalid_client_token_id(keyed_server):
    sqs = keyed_server.client(access_key="someone-else", secret=API_KEY, region="eu-west-1")
    with pytest.raises(ClientError) as e:
        sqs.list_queues()
    assert error_code(e.value) == ("InvalidClientTokenId", 403)


def test_a_signature_for_another_region_is_refused(keyed_server):
    sqs = keyed_server.client(access_key="team-a", secret=API_KEY, region="us-east-1")
    with pytest.raises(ClientError) as e:
        sqs.list_queues()
    assert error_code(e.value)[0] == "SignatureDoesNotMatch"


def test_an_unsigned_request_is_refused_and_our_own_api_key_header_is_no_substitute(keyed_server):
    status, headers, _ = raw_aws_request(keyed_server, "AmazonSQS.ListQueues", headers={"x-api-key": API_KEY})
    assert status == 403
    assert headers["x-amzn-query-error"] == "MissingAuthenticationToken;Sender"


def test_our_json_api_still_wants_its_key_beside_the_aws_protocols(keyed_server):
    status, _ = keyed_server.http("GET", "/orders")
    assert status == 401
    status, _ = keyed_server.http("GET", "/orders", headers={"x-api-key": API_KEY})
    assert status == 200
