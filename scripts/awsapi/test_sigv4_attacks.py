"""A hostile client against SigV4 on the AWS protocols (with --api-key), using botocore's own
signer to make requests that are correctly signed, then tampering with them.

What each test relies on is SigV4 as AWS documents it
(https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html): the payload is
signed through its SHA-256, every signed header's value is part of the signature, the
credential scope names the region and service, and a signature is refused when its date is
more than 15 minutes from the server's clock.
"""

import datetime
import hashlib
import json
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import API_KEY


def signed(server, target, body=b"{}", content_sha256=None, token=None, service="sqs"):
    """A request signed by botocore's SigV4 signer as team-a with the API key as secret."""
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target}
    if content_sha256 is not None:
        headers["X-Amz-Content-SHA256"] = content_sha256
    request = AWSRequest(method="POST", url=server.url + "/", data=body, headers=headers)
    SigV4Auth(Credentials("team-a", API_KEY, token), service, "eu-west-1").add_auth(request)
    return request


def send(server, request, body=None):
    """Sends the signed request's headers with `body` (the signed body when None)."""
    req = urllib.request.Request(server.url + "/", data=request.body if body is None else body, method="POST")
    for k, v in request.headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def test_a_signed_payload_hash_must_be_the_hash_of_the_body_that_arrived(keyed_server):
    # A client may send the payload hash as X-Amz-Content-SHA256 (botocore then signs the
    # header's value), but the server must hash the body it received: otherwise a captured
    # request's body can be swapped for another while its signature still verifies.
    url = f"{keyed_server.url}/123456789012/POC-Queue-DLQ"
    honest = json.dumps({"QueueUrl": url, "MessageBody": "honest"}).encode()
    forged = json.dumps({"QueueUrl": url, "MessageBody": "forged"}).encode()
    request = signed(keyed_server, "AmazonSQS.SendMessage", honest,
                     content_sha256=hashlib.sha256(honest).hexdigest())
    status, headers = send(keyed_server, request, forged)
    assert (status, headers["x-amzn-query-error"]) == (403, "SignatureDoesNotMatch;Sender")
    assert send(keyed_server, request)[0] == 200


def test_a_signed_session_token_cannot_be_swapped(keyed_server):
    request = signed(keyed_server, "AmazonSQS.ListQueues", token="token-one")
    assert send(keyed_server, request)[0] == 200
    request.headers.replace_header("X-Amz-Security-Token", "token-two")
    status, headers = send(keyed_server, request)
    assert (status, headers["x-amzn-query-error"]) == (403, "SignatureDoesNotMatch;Sender")


def test_a_signature_older_than_fifteen_minutes_is_refused(keyed_server):
    # botocore's add_auth dates a signature with the clock; its steps, run by hand, sign one
    # dated 16 minutes ago.
    when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=16)
    request = AWSRequest(method="POST", url=keyed_server.url + "/", data=b"{}", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.ListQueues"})
    signer = SigV4Auth(Credentials("team-a", API_KEY), "sqs", "eu-west-1")
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    signer._modify_request_before_signing(request)
    signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    signer._inject_signature_to_request(request, signature)
    status, headers = send(keyed_server, request)
    assert (status, headers["x-amzn-query-error"]) == (403, "SignatureDoesNotMatch;Sender")


def test_a_signature_scoped_to_another_service_is_refused(keyed_server):
    # An SQS request signed for DynamoDB (a key scoped to one service must not open another).
    status, headers = send(keyed_server, signed(keyed_server, "AmazonSQS.ListQueues", service="dynamodb"))
    assert (status, headers["x-amzn-query-error"]) == (403, "SignatureDoesNotMatch;Sender")
