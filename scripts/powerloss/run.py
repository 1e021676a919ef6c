"""Power cuts under load: `orderflow serve` on a file system that loses unsynced writes.

Each round mounts lazyfs.py over the same backing directory, starts the server on it,
checks the database opens clean (PRAGMA integrity_check), posts orders from several
clients, and at a random moment cuts the power: the server is killed and every write it
had not fsync'd is dropped. After the last round every order that got a 202 must be
stored and announced (delivered to a `queue` subscription).

First it proves the file system really drops unsynced data (else the test could not fail).

Usage: python run.py ORDERFLOW_BINARY WORK_DIR [--cuts N] [--seed S]
"""

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def mount(backing, mnt, log):
    os.makedirs(mnt, exist_ok=True)
    fs = subprocess.Popen([sys.executable, os.path.join(HERE, "lazyfs.py"), backing, mnt],
                          stdout=log, stderr=log)
    deadline = time.time() + 15
    while not os.path.ismount(mnt):
        if fs.poll() is not None or time.time() > deadline:
            raise SystemExit("lazyfs did not mount (see %s)" % log.name)
        time.sleep(0.05)
    return fs


def umount(mnt):
    cmd = ["umount", mnt] if os.geteuid() == 0 else ["fusermount3", "-u", mnt]
    subprocess.run(cmd, check=True)


def power_cut(fs, mnt):
    try:
        os.close(os.open(os.path.join(mnt, ".power-cut"), os.O_CREAT | os.O_WRONLY))
    except OSError:
        pass  # the cut answers with an error, on purpose
    umount(mnt)
    fs.wait(timeout=15)


def unmount(fs, mnt):
    umount(mnt)
    fs.wait(timeout=15)


def self_check(work, log):
    """The file system keeps fsync'd data and drops the rest at a cut."""
    backing, mnt = os.path.join(work, "check-backing"), os.path.join(work, "check-mnt")
    os.makedirs(backing, exist_ok=True)
    fs = mount(backing, mnt, log)
    path = os.path.join(mnt, "f")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.write(fd, b"synced.")
    os.fsync(fd)
    os.write(fd, b"lost")
    assert os.pread(fd, 100, 0) == b"synced.lost", "reads see unsynced writes"
    os.close(fd)
    power_cut(fs, mnt)
    with open(os.path.join(backing, "f"), "rb") as f:
        kept = f.read()
    assert kept == b"synced.", "after the cut the file holds %r" % kept


class Server:
    def __init__(self, binary, data_dir, log):
        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", data_dir,
             "--sign-deliveries", "false", "--burst-rate", "0"],
            stdout=subprocess.PIPE, stderr=log, text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")} | {"RUST_LOG": "warn"})
        deadline = time.time() + 60
        self.url = None
        while self.url is None:
            line = self.proc.stdout.readline()
            if not line and (self.proc.poll() is not None or time.time() > deadline):
                raise SystemExit("the server did not start (see %s)" % log.name)
            if "listening on" in line:
                self.url = "http://" + line.split("listening on")[1].split()[0].strip().rstrip("/").replace("http://", "")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def request(self, method, path, body=None, timeout=5):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def order(order_id):
    return {"orderID": order_id, "customerId": "c-1", "currency": "EUR",
            "items": [{"sku": "A-1", "quantity": 2, "unitPrice": 19.99}]}


def post_until(server, stop, acked, lock):
    while not stop.is_set():
        oid = "pl-" + uuid.uuid4().hex
        try:
            status, _ = server.request("POST", "/orders", order(oid), timeout=3)
        except (urllib.error.URLError, ConnectionError, OSError):
            continue
        if status == 202:
            with lock:
                acked.add(oid)


def wait_idle(server, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        _, s = server.request("GET", "/stats")
        q = s["queue"]
        if q["visible"] == 0 and q["inFlight"] == 0 and s["stream"]["pending"] == 0 and s["deliveries"]["pending"] == 0:
            return s
        time.sleep(0.2)
    raise SystemExit("the pipeline did not drain: %s" % s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("work")
    ap.add_argument("--cuts", type=int, default=5)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("ORDERFLOW_POWERLOSS_SEED", time.time())))
    ap.add_argument("--clients", type=int, default=6)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    os.makedirs(args.work, exist_ok=True)
    log = open(os.path.join(args.work, "powerloss.log"), "a")
    print("seed %d (ORDERFLOW_POWERLOSS_SEED replays it)" % args.seed, flush=True)
    started = time.time()
    self_check(args.work, log)
    print("lazyfs drops unsynced writes at a cut: checked", flush=True)

    backing, mnt = os.path.join(args.work, "backing"), os.path.join(args.work, "mnt")
    os.makedirs(backing, exist_ok=True)
    data = os.path.join(mnt, "data")
    acked, lock = set(), threading.Lock()
    for round_ in range(args.cuts + 1):
        fs = mount(backing, mnt, log)
        db = os.path.join(data, "orderflow.db")
        if os.path.exists(db):
            conn = sqlite3.connect(db)
            check = conn.execute("PRAGMA integrity_check").fetchall()
            conn.close()
            if check != [("ok",)]:
                raise SystemExit("round %d: the database does not open clean: %s" % (round_, check))
        server = Server(args.binary, data, log)
        if round_ == 0:
            server.request("POST", "/subscriptions", {"protocol": "queue", "endpoint": "audit"})
        if round_ == args.cuts:
            break
        stop = threading.Event()
        clients = [threading.Thread(target=post_until, args=(server, stop, acked, lock)) for _ in range(args.clients)]
        for c in clients:
            c.start()
        time.sleep(rng.uniform(0.3, 2.0))
        server.kill()
        stop.set()
        for c in clients:
            c.join()
        power_cut(fs, mnt)
        print("cut %d: %d orders acknowledged so far" % (round_ + 1, len(acked)), flush=True)

    stats = wait_idle(server, 60)
    missing = []
    for oid in sorted(acked):
        try:
            server.request("GET", "/orders/" + oid)
        except urllib.error.HTTPError as e:
            if e.code == 404:
                missing.append(oid)
            else:
                raise
    announced = set()
    while True:
        _, got = server.request("POST", "/queues/audit/receive", {"maxNumberOfMessages": 10})
        if not got["messages"]:
            break
        for m in got["messages"]:
            announced.add(json.loads(json.loads(m["body"])["Message"])["order"]["orderID"])
        server.request("POST", "/queues/audit/delete", {"receiptHandles": [m["receiptHandle"] for m in got["messages"]]})
    server.stop()
    unmount(fs, mnt)
    unannounced = acked - announced
    print("%d power cuts, %d orders acknowledged, %d stored, %d lost, %d not announced, %.0f s"
          % (args.cuts, len(acked), stats["orders"]["stored"], len(missing), len(unannounced), time.time() - started),
          flush=True)
    if missing or unannounced:
        raise SystemExit("lost: %s; not announced: %s" % (missing[:5], sorted(unannounced)[:5]))
    if len(acked) < args.cuts * 5:
        raise SystemExit("too few orders acknowledged (%d) to prove anything" % len(acked))


if __name__ == "__main__":
    main()
