"""Attacks on access control and data handling, against the real `orderflow serve`.

Run by scripts/test-hostile with the binary's path: python3 auth_attacks.py BINARY. Each
attack is one that worked before issue 14 was fixed; each check prints "ok" or "FAIL" and
the script exits non-zero if any failed. Standard library only, so it runs in any venv.
Everything talks to 127.0.0.1.
"""

import http.server
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

KEY = "hostile-api-key-" + os.urandom(8).hex()
READ_KEY = "hostile-read-key-" + os.urandom(8).hex()
RESULTS = {"passed": 0, "failed": 0}


def check(what, ok, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f": {detail}"), flush=True)


class Server:
    """One `orderflow serve` on a free loopback port."""

    def __init__(self, binary, root, name, args, env=None):
        self.data = os.path.join(root, name)
        self.log = open(os.path.join(root, name + ".log"), "w")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_") and not k.lower().endswith("_proxy")}
        full_env.update(env or {})
        full_env.setdefault("RUST_LOG", "warn")
        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", self.data, *args],
            stdout=subprocess.PIPE, stderr=self.log, env=full_env, text=True,
        )
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (http://[0-9.:]+)", line)
        if not match:
            raise SystemExit(f"orderflow serve did not start: {line!r}")
        self.url = match.group(1)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def call(url, method="GET", body=None, key=None, headers=None):
    """(status, text) of one request; never raises for an HTTP error status."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if key:
        request.add_header("x-api-key", key)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_for(what, probe, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def order(order_id, **fields):
    body = {
        "orderID": order_id, "customerId": "cust-1", "customerEmail": "ada@example.com",
        "items": [{"sku": "BOOK-1", "quantity": 1, "unitPrice": 9.99}], "currency": "EUR",
    }
    body.update(fields)
    return body


class Subscriber:
    """A webhook that confirms its subscription and keeps what it was sent."""

    def __init__(self):
        self.received = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                envelope = json.loads(self.rfile.read(length) or b"{}")
                outer.received.append(envelope)
                self.send_response(200)
                self.end_headers()
                if envelope.get("Type") == "SubscriptionConfirmation":
                    threading.Thread(target=call, args=(envelope["SubscribeURL"],), daemon=True).start()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/sns"

    def notifications(self):
        return [e for e in self.received if e.get("Type") == "Notification"]


def attack_reads_and_keys(s):
    for path in ["/orders", "/orders/x", "/orders/x/trace", "/stats", "/metrics", "/subscriptions", "/queue/dlq"]:
        status, _ = call(s.url + path)
        check(f"GET {path} without a key is refused", status == 401, status)
        status, _ = call(s.url + path, key=READ_KEY)
        check(f"GET {path} with the read-only key is allowed", status in (200, 404), status)
    status, _ = call(s.url + "/orders", "POST", order("hostile-read"), key=READ_KEY)
    check("the read-only key cannot post an order", status == 403, status)
    status, _ = call(s.url + "/subscriptions", "POST", {"protocol": "queue", "endpoint": "r"}, key=READ_KEY)
    check("the read-only key cannot subscribe", status == 403, status)
    for path in ["/healthz", "/", "/openapi.json", "/schema/order.json"]:
        status, _ = call(s.url + path)
        check(f"GET {path} stays open", status == 200, status)


def attack_unsubscribe(s):
    subscriber = Subscriber()
    status, body = call(s.url + "/subscriptions", "POST", {"protocol": "http", "endpoint": subscriber.url}, key=KEY)
    sub = json.loads(body)
    arn, sub_id = sub.get("subscriptionArn", ""), sub.get("id", "")
    wait_for("the confirmation", lambda: call(f"{s.url}/subscriptions/{sub_id}", key=KEY)[1].find('"Confirmed"') >= 0)
    status, _ = call(s.url + "/orders", "POST", order("hostile-unsub"), key=KEY)
    note = wait_for("a notification", lambda: (subscriber.notifications() or [None])[0])
    link = note.get("UnsubscribeURL", "")
    check("the UnsubscribeURL carries a token", "&Token=" in link, link)
    base = f"{s.url}/subscriptions/unsubscribe?Action=Unsubscribe&SubscriptionArn="
    for what, url in [
        ("a bare ARN", base + urllib.parse.quote(arn, safe="")),
        ("a bare id", base + sub_id),
        ("a guessed token", base + urllib.parse.quote(arn, safe="") + "&Token=" + "0" * 64),
    ]:
        status, _ = call(url)
        check(f"{what} does not unsubscribe", status == 403, status)
    status, _ = call(f"{s.url}/subscriptions/{sub_id}", key=KEY)
    check("the subscription is still there", status == 200, status)
    status, _ = call(link)
    check("the subscriber's own link unsubscribes", status == 200, status)
    subscriber.httpd.shutdown()


def attack_metric_labels(s):
    for i in range(20):
        call(s.url + "/orders", method=f"MADEUP{i}")
        call(s.url + f"/made-up-{i}")
    _, text = call(s.url + "/metrics", key=READ_KEY)
    check("made-up methods and paths add no metric labels", "MADEUP" not in text and "made-up-" not in text)


def attack_control_characters(s):
    for field, value in [("customerId", "x\u001b[2J"), ("notes", "a\r\u001b]0;t\u0007"), ("customerId", "a\nTotal: 0.01 EUR")]:
        status, body = call(s.url + "/orders", "POST", order("hostile-ctl", **{field: value}), key=KEY)
        check(f"{field} {value!r} is refused", status == 400 and field in body, (status, body))


def attack_subscription_flood(s):
    subscriber_url = "http://127.0.0.1:9/flood"
    statuses = [call(s.url + "/subscriptions", "POST", {"protocol": "http", "endpoint": subscriber_url}, key=KEY)[0] for _ in range(3)]
    check("an identical subscribe returns the existing subscription", statuses == [201, 200, 200], statuses)
    statuses = [call(s.url + "/subscriptions", "POST", {"protocol": "queue", "endpoint": f"flood{i}"}, key=KEY)[0] for i in range(6)]
    check("subscriptions past --max-subscriptions are refused", 403 in statuses, statuses)


def attack_queue_scoping(s):
    binary_queues = ["scope-a", "scope-b"]
    # The flood above filled the subscriptions; make room by removing them.
    _, body = call(s.url + "/subscriptions", key=KEY)
    for sub in json.loads(body).get("subscriptions", []):
        call(f"{s.url}/subscriptions/{sub['id']}", "DELETE", key=KEY)
    for q in binary_queues:
        call(s.url + "/subscriptions", "POST", {"protocol": "queue", "endpoint": q}, key=KEY)
    call(s.url + "/orders", "POST", order("hostile-scope"), key=KEY)
    messages = wait_for("a message in scope-b", lambda: json.loads(
        call(s.url + "/queues/scope-b/receive", "POST", {"visibilityTimeout": 60}, key=KEY)[1]).get("messages"))
    handle = urllib.parse.quote(messages[0]["receiptHandle"], safe="")
    status, _ = call(f"{s.url}/queues/scope-a/messages/{handle}", "DELETE", key=KEY)
    check("a receipt handle does not delete from another queue", status == 404, status)


def attack_rate_limit(binary, root):
    s = Server(binary, root, "rate", ["--rate-limit", "1", "--rate-limit-burst", "2",
                                      "--rate-limit-clients", "4", "--trust-forwarded-for", "127.0.0.1/32"])
    try:
        as_client = lambda ip: call(s.url + "/stats", headers={"x-forwarded-for": ip})[0]
        first = [as_client("198.51.100.7") for _ in range(3)]
        check("a client is limited", first[-1] == 429, first)
        after = []
        for i in range(10):
            as_client(f"203.0.113.{i}")
            after.append(as_client("198.51.100.7"))
        check("new addresses do not reset the attacker's limit", set(after) == {429}, after)
        check("clients behind the trusted proxy have their own limit", as_client("203.0.113.200") == 200)
        check("an IPv6 client's /64 shares one limit",
              [as_client("2001:db8:1:2::1"), as_client("2001:db8:1:2::2"), as_client("2001:db8:1:2::3")][-1] == 429)
    finally:
        s.stop()


def main():
    binary = sys.argv[1]
    root = tempfile.mkdtemp(prefix="orderflow-auth-attacks-")
    data = os.path.join(root, "main")
    os.makedirs(data)
    os.chmod(data, 0o755)
    s = Server(binary, root, "main", ["--max-subscriptions", "5", "--max-confirmations-per-endpoint", "2"],
               env={"ORDERFLOW_API_KEY": KEY, "ORDERFLOW_READ_API_KEY": READ_KEY})
    try:
        mode = stat.S_IMODE(os.stat(data).st_mode)
        check("a data directory others could read is made owner-only", mode == 0o700, oct(mode))
        attack_reads_and_keys(s)
        attack_unsubscribe(s)
        attack_metric_labels(s)
        attack_control_characters(s)
        attack_subscription_flood(s)
        attack_queue_scoping(s)
    finally:
        s.stop()
    attack_rate_limit(binary, root)
    print(f"attacks: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    sys.exit(1 if RESULTS["failed"] else 0)


if __name__ == "__main__":
    main()
