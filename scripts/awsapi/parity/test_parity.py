"""The parity suite: the same boto3 scenario (scenario.py) against moto and against
`orderflow serve`, compared by response shape, error code and HTTP status. Every difference
is listed, with its reason, in known_differences.json and in the README; a difference not
listed fails, and so does a listed one that no longer occurs.

scripts/test-awsapi starts moto (moto_server from .venv) and sets ORDERFLOW_MOTO_URL.
"""

import json
import os
import pathlib
import urllib.request

import pytest

import scenario
import shapes
from conftest import Server

HERE = pathlib.Path(__file__).resolve().parent
KNOWN = HERE / "known_differences.json"
README = HERE.parents[2] / "README.md"


@pytest.fixture(scope="module")
def moto_url():
    url = os.environ.get("ORDERFLOW_MOTO_URL")
    assert url, "ORDERFLOW_MOTO_URL is not set: run ./scripts/test-awsapi, which starts moto"
    # A clean moto, whoever used it before (moto's own reset endpoint).
    urllib.request.urlopen(urllib.request.Request(url + "/moto-api/reset", method="POST"), timeout=10)
    return url


@pytest.fixture(scope="module")
def fresh_server():
    # An SMTP relay, so an email subscription is taken (serve refuses one it could not mail);
    # nothing listens there, and the confirmation mail fails in the background.
    # Signed deliveries, as SNS signs every envelope.
    s = Server("--max-receive-count", str(scenario.MAX_RECEIVE_COUNT), "--smtp-url", "smtp://127.0.0.1:9",
               sign_deliveries=True)
    yield s
    s.stop()


def known_differences():
    return json.loads(KNOWN.read_text())


def test_serve_answers_the_scenario_as_moto_does_but_for_the_listed_differences(moto_url, fresh_server):
    found = scenario.compare(moto_url, fresh_server.url)
    known = {shapes.key(d) for d in known_differences()}
    unlisted = [d for d in found if shapes.key(d) not in known]
    gone = [d for d in known_differences() if shapes.key(d) not in {shapes.key(f) for f in found}]
    assert not unlisted, ("differences not in known_differences.json (fix serve, or list them with "
                          "their reason):\n" + json.dumps(unlisted, indent=2))
    assert not gone, ("listed differences that no longer occur (remove them from known_differences.json "
                      "and the README):\n" + json.dumps(gone, indent=2))


def test_every_listed_difference_has_a_reason_and_a_row_in_the_readme():
    readme = README.read_text()
    for d in known_differences():
        assert len(d.get("reason", "")) > 20, d
        assert f"| {d['step']} | `{d['path']}` |" in readme, f"README has no row for {d['step']} {d['path']}"


def test_a_shape_keeps_keys_and_types_but_no_values():
    one = {"QueueUrl": "http://a/1/q", "Messages": [{"Body": "x", "Attributes": {"SentTimestamp": "1"}}]}
    two = {"QueueUrl": "http://b/2/q", "Messages": [{"Body": "y", "Attributes": {"SentTimestamp": "2"}},
                                                     {"Body": "z", "Attributes": {"SentTimestamp": "3"}}]}
    assert shapes.flatten(one) == shapes.flatten(two) == {
        ".": "map", "QueueUrl": "string", "Messages": "list", "Messages[]": "map", "Messages[].Body": "string",
        "Messages[].Attributes": "map", "Messages[].Attributes.SentTimestamp": "string"}


def test_a_missing_key_is_one_difference_and_its_children_are_not_listed_again():
    moto = [shapes.record("Receive", {"status": 200, "response": {"Messages": [{"Body": "x", "MD5OfBody": "m"}]}})]
    serve = [shapes.record("Receive", {"status": 200, "response": {}})]
    assert shapes.differences(moto, serve) == [
        {"step": "Receive", "path": "Messages", "moto": "list", "serve": None}]


def test_an_error_on_one_side_only_is_a_difference_of_code_and_status():
    moto = [shapes.record("Delete", {"status": 200, "response": {}})]
    serve = [shapes.record("Delete", {"error": "ReceiptHandleIsInvalid", "status": 400})]
    assert shapes.differences(moto, serve) == [
        {"step": "Delete", "path": "!error", "moto": None, "serve": "ReceiptHandleIsInvalid"},
        {"step": "Delete", "path": "!status", "moto": 200, "serve": 400}]
