"""SigV4 on the AWS protocols, checked with boto3's own signer.

Without an API key any credentials are accepted (as local emulators do). With --api-key,
a request must be signed (AWS Signature Version 4,
https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html) by the
configured access key id with the API key as the secret access key; otherwise SQS's own
authentication errors (403 InvalidClientTokenId / SignatureDoesNotMatch, in the JSON
protocol's error shape) come back.
"""

import hashlib
import json
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import API_KEY


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
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_an_unknown_access_key_id_gets_invalid_client_token_id(keyed_server):
    sqs = keyed_server.client(access_key="someone-else", secret=API_KEY, region="eu-west-1")
    with pytest.raises(ClientError) as e:
        sqs.list_queues()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_signature_for_another_region_is_refused(keyed_server):
    sqs = keyed_server.client(access_key="team-a", secret=API_KEY, region="us-east-1")
    with pytest.raises(ClientError) as e:
        sqs.list_queues()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_an_unsigned_request_is_refused_and_our_own_api_key_header_is_no_substitute(keyed_server):
    req = urllib.request.Request(keyed_server.url + "/", data=b"{}", method="POST")
    req.add_header("content-type", "application/x-amz-json-1.0")
    req.add_header("x-amz-target", "AmazonSQS.ListQueues")
    req.add_header("x-api-key", API_KEY)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-query-error"] == "MissingAuthenticationToken;Sender"


def test_our_json_api_still_wants_its_key_beside_the_aws_protocols(keyed_server):
    status, _ = keyed_server.http("GET", "/orders")
    assert status == 401
    status, _ = keyed_server.http("GET", "/orders", headers={"x-api-key": API_KEY})
    assert status == 200


def signed_request(server, target, body, content_sha256=None):
    """A request signed by botocore's own SigV4 signer (team-a, the API key as secret)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target}
    if content_sha256 is not None:
        headers["X-Amz-Content-SHA256"] = content_sha256
    request = AWSRequest(method="POST", url=server.url + "/", data=body, headers=headers)
    SigV4Auth(Credentials("team-a", API_KEY), "sqs", "eu-west-1").add_auth(request)
    return request


def send(server, request, body):
    req = urllib.request.Request(server.url + "/", data=body, method="POST")
    for k, v in request.headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def test_a_signed_payload_hash_must_be_the_hash_of_the_body_that_arrived(keyed_server):
    # SigV4 signs the payload through its SHA-256 ("HashedPayload" in the canonical request,
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html). A client
    # may send that hash as X-Amz-Content-SHA256 (botocore then signs the header's value),
    # but the server must hash the body it received: otherwise a captured request's body
    # can be swapped for another while its signature still verifies.
    url = f"{keyed_server.url}/123456789012/POC-Queue-DLQ"
    honest = json.dumps({"QueueUrl": url, "MessageBody": "honest"}).encode()
    forged = json.dumps({"QueueUrl": url, "MessageBody": "forged"}).encode()
    request = signed_request(keyed_server, "AmazonSQS.SendMessage", honest,
                             content_sha256=hashlib.sha256(honest).hexdigest())
    status, headers = send(keyed_server, request, forged)
    assert (status, headers["x-amzn-query-error"]) == (403, "SignatureDoesNotMatch;Sender")
    assert send(keyed_server, request, honest)[0] == 200
