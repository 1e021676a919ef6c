"""The AWS CLI (`awscli` from PyPI, a client we did not write) against `orderflow serve` with
--endpoint-url, as the README shows it."""

import json
import os
import pathlib
import subprocess
import sys

from conftest import API_KEY, queue_url

AWS = str(pathlib.Path(sys.executable).parent / "aws")


def aws(server, *args, access_key="anything", secret="anything", region="us-east-1"):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_DEFAULT_REGION=region, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
    return subprocess.run([AWS, "--endpoint-url", server.url, "--output", "json", "sqs", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_the_cli_sends_receives_and_deletes_a_message(server):
    url = queue_url(server, "scratch")
    assert aws(server, "purge-queue", "--queue-url", url).returncode == 0
    got = aws(server, "get-queue-url", "--queue-name", "scratch")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["QueueUrl"] == url
    sent = aws(server, "send-message", "--queue-url", url, "--message-body", "from the cli",
               "--message-attributes", '{"kind": {"DataType": "String", "StringValue": "cli"}}')
    assert sent.returncode == 0, sent.stderr
    received = aws(server, "receive-message", "--queue-url", url, "--wait-time-seconds", "2",
                   "--message-attribute-names", "All")
    assert received.returncode == 0, received.stderr
    message = json.loads(received.stdout)["Messages"][0]
    assert message["Body"] == "from the cli"
    assert message["MessageAttributes"]["kind"]["StringValue"] == "cli"
    deleted = aws(server, "delete-message", "--queue-url", url, "--receipt-handle", message["ReceiptHandle"])
    assert deleted.returncode == 0, deleted.stderr


def test_the_cli_reports_an_unknown_queue(server):
    out = aws(server, "get-queue-url", "--queue-name", "nope")
    assert out.returncode != 0
    assert "NonExistentQueue" in out.stderr or "QueueDoesNotExist" in out.stderr, out.stderr


def test_the_cli_signs_with_the_api_key_and_a_wrong_secret_is_refused(keyed_server):
    ok = aws(keyed_server, "list-queues", access_key="team-a", secret=API_KEY, region="eu-west-1")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["QueueUrls"][0].endswith("/123456789012/POC-Queue")
    bad = aws(keyed_server, "list-queues", access_key="team-a", secret="wrong-secret", region="eu-west-1")
    assert bad.returncode != 0
    assert "SignatureDoesNotMatch" in bad.stderr, bad.stderr
