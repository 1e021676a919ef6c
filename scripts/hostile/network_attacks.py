"""Network attacks against the real `orderflow serve` binary, from a client we did not write
(Python's standard library): slowloris and a connection flood, DNS rebinding, cross-site form
posts, and server-side request forgery through subscriptions (internal addresses, redirects).

Usage: python network_attacks.py PATH_TO_ORDERFLOW_BINARY. Exits non-zero on the first
attack that works. Everything runs on 127.0.0.1 and every wait is bounded.
"""

import http.server
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

KEY = "hostile-net-" + secrets.token_hex(16)


class Server:
    """`orderflow serve` on a fresh data directory, stopped with SIGTERM."""

    def __init__(self, binary, *flags):
        self.dir = tempfile.TemporaryDirectory(prefix="orderflow-net-attacks-")
        self.log = open(os.path.join(self.dir.name, "server.log"), "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_") and not k.lower().endswith("_proxy")}
        env.update({"ORDERFLOW_API_KEY": KEY, "RUST_LOG": "warn"})
        self.process = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", os.path.join(self.dir.name, "data"), *flags],
            stdout=subprocess.PIPE, stderr=self.log, env=env, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            match = re.search(r"listening on http://([0-9.]+):([0-9]+)", line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                self.url = f"http://{self.host}:{self.port}"
                threading.Thread(target=self.process.stdout.read, daemon=True).start()
                return
            if not line and self.process.poll() is not None:
                break
        raise SystemExit(f"orderflow serve did not start; see {self.log.name}")

    def request(self, method, path, body=None, headers=None):
        """Status and parsed JSON body (or text) of one request."""
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={"x-api-key": KEY, **(headers or {})})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=20) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        finally:
            self.log.close()
            self.dir.cleanup()


def check(condition, message):
    if not condition:
        raise SystemExit("ATTACK WORKED: " + message)


def raw(server, data, read_timeout=10.0):
    """Sends raw bytes on a new connection; returns everything read until the server closes."""
    with socket.create_connection((server.host, server.port), timeout=read_timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks).decode(errors="replace")
            chunks.append(chunk)


def slowloris(binary):
    server = Server(binary, "--header-read-timeout-ms", "1000", "--keep-alive-timeout-ms", "500", "--max-connections", "16")
    try:
        sockets = []
        for _ in range(16):
            s = socket.create_connection((server.host, server.port), timeout=10)
            s.sendall(f"GET /orders HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nX-Slow: ".encode())
            sockets.append(s)
        time.sleep(0.3)
        flooded = raw(server, f"GET /healthz HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n\r\n".encode())
        check(flooded.startswith("HTTP/1.1 503") and "--max-connections" in flooded,
              f"a 17th connection past --max-connections 16 was not refused with 503: {flooded[:200]!r}")
        started = time.monotonic()
        for s in sockets:
            # Trickle: one byte now and then never completes the headers.
            closed = False
            while time.monotonic() - started < 6:
                try:
                    s.sendall(b"a")
                    s.settimeout(0.2)
                    if s.recv(1) == b"":
                        closed = True
                        break
                except socket.timeout:
                    continue
                except OSError:
                    closed = True
                    break
            check(closed, "a slowloris connection was held open past the header read timeout")
            s.close()
        elapsed = time.monotonic() - started
        check(elapsed < 5, f"slowloris connections were cut only after {elapsed:.1f}s")
        status, _ = server.request("GET", "/healthz")
        check(status == 200, f"/healthz after the slowloris connections were cut: {status}")
        print(f"slowloris: 16 trickling connections cut within {elapsed:.1f}s; a 17th got 503 while they lasted")
    finally:
        server.stop()


def rebinding_and_cross_site(binary):
    server = Server(binary)
    try:
        for host in ("rebind.attacker.example", f"rebind.attacker.example:{server.port}"):
            answer = raw(server, f"GET /orders HTTP/1.1\r\nHost: {host}\r\nx-api-key: {KEY}\r\nConnection: close\r\n\r\n".encode())
            check(answer.startswith("HTTP/1.1 421"), f"a request for Host {host} was answered: {answer[:120]!r}")
        forms = [
            ("/subscriptions", "application/x-www-form-urlencoded", "protocol=http&endpoint=http%3A%2F%2F127.0.0.1%3A9%2F"),
            ("/subscriptions", "text/plain", json.dumps({"protocol": "log", "endpoint": "stdout"})),
            ("/queue/messages", "text/plain", json.dumps({"customerId": "c"})),
            ("/queue/dlq/redrive", None, None),
        ]
        for path, content_type, body in forms:
            headers = {"content-type": content_type} if content_type else {}
            status, answer = server.request("POST", path, body or b"", headers)
            check(status == 415, f"a form-style POST {path} ({content_type}) got {status}: {answer}")
        _, stats = server.request("GET", "/stats")
        check(stats["subscriptions"] == 0 and stats["queue"]["visible"] == 0, f"a form POST changed state: {stats}")
        print("rebinding and cross-site: foreign Host got 421; form and bodiless POSTs got 415; nothing changed")
    finally:
        server.stop()


class Recorder(http.server.BaseHTTPRequestHandler):
    """An internal service: records every request it gets."""
    seen = []

    def do_GET(self):
        Recorder.seen.append(("GET", self.path))
        self.send_response(200)
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        Recorder.seen.append(("POST", self.path, self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def start(handler):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def ssrf(binary):
    server = Server(binary, "--delivery-min-backoff-ms", "20", "--delivery-max-backoff-ms", "100")
    internal = start(Recorder)
    internal_url = f"http://127.0.0.1:{internal.server_address[1]}/admin"

    class Redirector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if self.headers.get("x-amz-sns-message-type") == "SubscriptionConfirmation":
                link = json.loads(body)["SubscribeURL"]
                threading.Thread(target=urllib.request.urlopen, args=(link,), daemon=True).start()
                self.send_response(200)
            else:
                self.send_response(307)
                self.send_header("Location", internal_url)
            self.end_headers()

        def log_message(self, *args):
            pass

    redirector = start(Redirector)
    try:
        for endpoint in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[fd00::1]/",
                         "http://[::ffff:169.254.169.254]/", "http://100.64.0.1/"):
            status, answer = server.request("POST", "/subscriptions", json.dumps({"protocol": "http", "endpoint": endpoint}),
                                            {"content-type": "application/json"})
            check(status == 400 and answer["details"][0]["field"] == "endpoint",
                  f"subscribing {endpoint} got {status}: {answer}")
        hook = f"http://127.0.0.1:{redirector.server_address[1]}/hook"
        status, sub = server.request("POST", "/subscriptions", json.dumps(
            {"protocol": "http", "endpoint": hook, "deliveryPolicy": {"maxAttempts": 2, "minDelayMs": 10, "maxDelayMs": 20}}),
            {"content-type": "application/json"})
        check(status == 201, f"subscribing the redirector: {status} {sub}")
        deadline = time.monotonic() + 15
        while server.request("GET", f"/subscriptions/{sub['id']}")[1]["status"] != "Confirmed":
            check(time.monotonic() < deadline, "the redirector's subscription was never confirmed")
            time.sleep(0.05)
        order = {"orderID": "net-" + secrets.token_hex(4), "customerId": "cust-42", "customerEmail": "ada@example.com",
                 "currency": "EUR", "items": [{"sku": "BOOK-1", "quantity": 1, "unitPrice": 19.99}],
                 "shippingAddress": {"line1": "1 Main St", "city": "Berlin", "postalCode": "10115", "country": "DE"}}
        status, answer = server.request("POST", "/orders", json.dumps(order), {"content-type": "application/json"})
        check(status == 202, f"POST /orders: {status} {answer}")
        while True:
            state = server.request("GET", f"/subscriptions/{sub['id']}")[1]
            if state["deliveries"]["failed"] >= 1:
                break
            check(time.monotonic() < deadline, f"the redirected delivery never failed: {state}")
            time.sleep(0.05)
        check(not Recorder.seen, f"a 307 was followed to the internal service: {Recorder.seen}")
        check("redirects are not followed" in state["lastError"], f"lastError: {state['lastError']}")
        print("ssrf: internal, link-local, ULA, mapped and CGNAT endpoints got 400; a 307 was a failed delivery, not followed")
    finally:
        redirector.shutdown()
        internal.shutdown()
        server.stop()


def main():
    binary = sys.argv[1]
    slowloris(binary)
    rebinding_and_cross_site(binary)
    ssrf(binary)
    print("network attacks: all refused")


if __name__ == "__main__":
    main()
