"""Shared by the real-gateway tests (nginx, Envoy): a keygate store driven by
the CLI, and free loopback ports."""
import http.server
import json
import os
import socket
import subprocess
import threading
import time


class Store:
    """A keygate store at `path`, driven through the `keygate` binary."""

    def __init__(self, binary, path):
        self.binary, self.path = binary, path

    def run(self, *args):
        return subprocess.run([self.binary, "--store", self.path, "--json", *args], check=True,
                              capture_output=True, text=True).stdout

    def issue(self, *args):
        return json.loads(self.run("issue", *args))["key"]

    def outcome_keys(self, prefix, pub):
        """Issues one key per outcome the gateway tests check, publishes to `pub`."""
        self.run("init", "--keyset", "gw", "--prefix", prefix)
        keys = {
            "valid": self.issue("--principal", "billing-service", "--scope", "invoices:read"),
            "old": self.issue("--principal", "mobile-app", "--scope", "invoices:read"),
            "noscope": self.issue("--principal", "search-indexer", "--scope", "search:read"),
            "revoked": self.issue("--principal", "leaky", "--scope", "invoices:read"),
            "later": self.issue("--principal", "partner", "--scope", "invoices:read", "--not-before",
                                str(int(time.time()) + 86400)),
            "to_revoke": self.issue("--principal", "breach", "--scope", "invoices:read"),
        }
        # The contract's principal cases (tests/vectors/contract.json).
        keys["unicode"] = self.issue("--principal", "z\u00fcrich b\u00fcro", "--scope", "invoices:read")
        keys["long"] = self.issue("--principal", "p" * 126 + "\u00fc", "--scope", "invoices:read")
        keys["rotated"] = json.loads(self.run("rotate", "--principal", "mobile-app", "--grace", "7d"))["key"]
        # Rotated later, by new_keys_through_the_update (after the snapshot).
        keys["to_rotate"] = self.issue("--principal", "rotating-service", "--scope", "invoices:read")
        self.run("revoke", "--key", keys["revoked"])
        self.run("publish", "--out", pub)
        # Well-formed, right prefix, never issued here.
        other = Store(self.binary, self.path + "-other")
        other.run("init", "--keyset", "gw", "--prefix", prefix)
        keys["unknown"] = other.issue("--principal", "elsewhere")
        return keys


def new_keys_through_the_update(store, pub, keys, status_of, check, who, within=1.5):
    """Issue 18 at a real gateway: after the snapshot, a key is issued and a
    principal rotated; `keygate publish` writes them as the update (format
    version 2, no new snapshot), and the gateway — configured as before —
    answers 200 for the new keys within `within` s, the rotated-out key with
    Deprecation. `status_of(key)` -> (status, lower-cased headers)."""
    snapshot = open(os.path.join(pub, "snapshot.kgs"), "rb").read()
    added = store.issue("--principal", "added-later", "--scope", "invoices:read")
    rotated = json.loads(store.run("rotate", "--principal", "rotating-service", "--grace", "1d"))["key"]
    check(status_of(added)[0] == 401, f"{who}: a key issued after the snapshot is unknown before the update")
    t0 = time.time()
    report = json.loads(store.run("publish", "--out", pub))
    update = open(os.path.join(pub, "revocations.kgr"), "rb").read()
    check(report["snapshot_bytes"] == 0 and report["records_in_update"] >= 3
          and open(os.path.join(pub, "snapshot.kgs"), "rb").read() == snapshot,
          f"{who}: the new keys went out as the update, not a snapshot: {report}")
    check(update[4:6] == b"\x02\x00", f"{who}: the update carries records (format version 2)")
    while status_of(added)[0] != 200 or status_of(rotated)[0] != 200:
        check(time.time() - t0 < within, f"{who}: keys from the update not accepted within {within} s: "
                                         f"{status_of(added)} {status_of(rotated)}")
        time.sleep(0.02)
    ms = 1000 * (time.time() - t0)
    st, h = status_of(keys["to_rotate"])
    check(st == 200 and "deprecation" in h and "sunset" in h,
          f"{who}: the rotated-out key is deprecated by the update: {st} {h}")
    print(f"{who}: a new and a rotated key accepted {ms:.0f} ms after the update was written")
    return ms


_given = set()


def free_port():
    """A loopback port nothing listens on, never the same one twice in a
    process (the kernel may hand a just-released port out again)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


class Checks:
    """`check(cond, msg)`: counts checks (`.count`); on the first failure prints
    the message and the tail of each log `logs()` names, and exits 1."""

    def __init__(self, logs):
        self.logs, self.count = logs, 0

    def __call__(self, cond, msg):
        self.count += 1
        if not cond:
            print("FAIL:", msg)
            for path in self.logs():
                if os.path.exists(path):
                    tail = open(path, errors="replace").read().splitlines()[-30:]
                    print(f"--- {os.path.basename(path)}\n" + "\n".join(tail))
            raise SystemExit(1)


def serve(handler):
    """Runs an HTTP handler class on a loopback port in a daemon thread."""
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=s.serve_forever, daemon=True).start()
    return s


def upstream_handler(answer):
    """An HTTP/1.1 upstream answering every GET with 200 and the body
    `answer(headers)` returns (bytes)."""
    class Upstream(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = answer(self.headers)
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    return Upstream
