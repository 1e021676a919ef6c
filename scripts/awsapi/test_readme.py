"""The README's boto3 consumer and AWS CLI commands run as written against the real server
(only the endpoint is this test server's), so the README cannot rot."""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import Server

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
BIN = pathlib.Path(sys.executable).parent
README_ENDPOINT = "http://127.0.0.1:8080"


def block(marker, language):
    """The fenced block that follows `<!-- marker -->` in the README."""
    return re.search(rf"<!-- {marker} -->\n```{language}\n(.*?)```", README.read_text(), re.S).group(1)


@pytest.fixture
def readme_server():
    """A server of its own, with the subscription the README creates with curl: what one
    test reads from its queue cannot reach the other."""
    s = Server()
    status, _ = s.http("POST", "/subscriptions", {"protocol": "queue", "endpoint": "warehouse"})
    assert status == 201, status
    yield s
    s.stop()


def test_the_readme_consumer_example_sends_an_order_and_receives_its_announcement(readme_server):
    code = block("awsapi-example", "python")
    assert f'endpoint_url="{README_ENDPOINT}"' in code
    code = code.replace(README_ENDPOINT, readme_server.url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['ord-sqs-1']"


def test_the_readme_cli_commands_run_as_written(readme_server):
    script = block("awsapi-cli", "sh")
    assert f"aws --endpoint-url {README_ENDPOINT} " in script
    script = script.replace(README_ENDPOINT, readme_server.url)
    # The AWS CLI of .venv-awsapi, and no AWS configuration but what the commands set.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(PATH=f"{BIN}:{env['PATH']}", AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_EC2_METADATA_DISABLED="true")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    # Each command printed its JSON answer; the receive got the order's announcement.
    assert f"{readme_server.url}/000000000000/POC-Queue" in out.stdout
    decoder, text, answers = json.JSONDecoder(), out.stdout.strip(), []
    while text:
        value, end = decoder.raw_decode(text)
        answers.append(value)
        text = text[end:].lstrip()
    received = [a for a in answers if "Messages" in a]
    assert received, out.stdout
    envelope = json.loads(received[0]["Messages"][0]["Body"])
    assert json.loads(envelope["Message"])["order"]["orderID"] == "ord-cli-1"
    assert any("TaskHandle" in a for a in answers), "the move task started"
