"""The README's boto3 consumer runs as written against the real server (only its endpoint
is this test server's)."""

import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_consumer_example_sends_an_order_and_receives_its_announcement(server):
    # The session's server has the subscription the README creates with curl.
    text = README.read_text()
    code = re.search(r"<!-- awsapi-example -->\n```python\n(.*?)```", text, re.S).group(1)
    assert 'endpoint_url="http://127.0.0.1:8080"' in code
    code = code.replace("http://127.0.0.1:8080", server.url)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['ord-sqs-1']"
