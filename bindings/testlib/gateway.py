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
        self.run("revoke", "--key", keys["revoked"])
        self.run("publish", "--out", pub)
        # Well-formed, right prefix, never issued here.
        other = Store(self.binary, self.path + "-other")
        other.run("init", "--keyset", "gw", "--prefix", prefix)
        keys["unknown"] = other.issue("--principal", "elsewhere")
        return keys


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
