"""Starts the real `orderflow serve` on 127.0.0.1:0 and gives tests boto3 clients pointed at it
with endpoint_url, as a downstream team would configure them."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config

BIN = os.environ.get("ORDERFLOW_BIN", "target/debug/orderflow")
API_KEY = "awsapi-test-key-0123456789"
REGION = "us-east-1"


class Server:
    def __init__(self, *extra, sign_deliveries=False):
        self.dir = tempfile.mkdtemp(prefix="orderflow-awsapi-")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--addr", "127.0.0.1:0", "--data-dir", self.dir + "/data",
             "--sign-deliveries", str(sign_deliveries).lower(), "--log-format", "json", *extra],
            stdout=subprocess.PIPE, stderr=open(self.dir + "/stderr.log", "w"), text=True,
        )
        deadline = time.time() + 30
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
            if self.proc.poll() is not None:
                raise RuntimeError("orderflow serve exited: " + open(self.dir + "/stderr.log").read())
        else:
            raise RuntimeError("orderflow serve did not start")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def http(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def client(self, access_key="anything", secret="anything", region=REGION):
        return boto3.client(
            "sqs", endpoint_url=self.url, region_name=region,
            aws_access_key_id=access_key, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}),
        )

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def raw_aws_request(server, target, body=b"{}", headers=None):
    """`POST /` as the AWS JSON 1.0 protocol frames it (`X-Amz-Target`,
    `application/x-amz-json-1.0`), unsigned, for what an SDK would not send; returns
    (status, headers, body) whatever the status."""
    req = urllib.request.Request(server.url + "/", data=body, method="POST")
    req.add_header("content-type", "application/x-amz-json-1.0")
    req.add_header("x-amz-target", target)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def error_code(e):
    """A botocore ClientError's code and HTTP status."""
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="session")
def server():
    # Short visibility and two receives: a bad order reaches the DLQ within a second. Its
    # queues are shared by the session's tests, which purge them between tests: SQS allows one
    # purge a minute, so this server allows any (as moto's
    # MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR=false would).
    s = Server("--visibility-timeout-ms", "300", "--max-receive-count", "2", "--sqs-purge-interval-ms", "0")
    for name in ("audit", "scratch", "warehouse"):
        status, _ = s.http("POST", "/subscriptions", {"protocol": "queue", "endpoint": name})
        assert status == 201, status
    yield s
    s.stop()


@pytest.fixture(scope="session")
def keyed_server():
    s = Server("--api-key", API_KEY, "--aws-access-key-id", "team-a", "--aws-account-id", "123456789012",
               "--aws-region", "eu-west-1")
    yield s
    s.stop()


@pytest.fixture
def sqs(server):
    return server.client()


def queue_url(server, name, account="000000000000"):
    return f"{server.url}/{account}/{name}"


def order(order_id, **overrides):
    o = {
        "orderID": order_id,
        "customerId": "c-1",
        "customerEmail": "a@example.com",
        "items": [{"sku": "A-1", "quantity": 2, "unitPrice": 1.5}],
        "currency": "EUR",
        "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"},
    }
    o.update(overrides)
    return o


def wait_for(predicate, timeout=15, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met within %ss" % timeout)


def drain(sqs, url):
    """Deletes whatever is in a queue (our queues are shared by the session's tests)."""
    sqs.purge_queue(QueueUrl=url)


# ---------------------------------------------------------------- DynamoDB


@pytest.fixture(scope="session")
def ddb_server():
    """A server of its own for the DynamoDB tests, whose orders (put or scanned) never show in
    the other tests' queues; `ddb-watch` is a queue subscription that sees every order
    announced."""
    s = Server()
    status, _ = s.http("POST", "/subscriptions", {"protocol": "queue", "endpoint": "ddb-watch"})
    assert status == 201, status
    yield s
    s.stop()


def aws_client(server, service, access_key="anything", secret="anything", region=REGION):
    return boto3.client(
        service, endpoint_url=server.url, region_name=region,
        aws_access_key_id=access_key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def aws_resource(server, service, access_key="anything", secret="anything", region=REGION):
    return boto3.resource(
        service, endpoint_url=server.url, region_name=region,
        aws_access_key_id=access_key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )
