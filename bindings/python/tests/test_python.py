"""The Python package in real servers: the wheel built by build.sh, a keyset
published by the keygate CLI, a FastAPI app (the dependency) and a Starlette
app (the ASGI middleware) each served by uvicorn on 127.0.0.1, called with
requests, and a Flask app (the WSGI middleware) and a Django app (its
middleware) each served by gunicorn with two workers: every answer, what the
application sees, a revocation while serving; then the verify call against the peer a user would write (hashlib +
dict), same run. Usage: python test_python.py KEYGATE_BIN"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../testlib"))
from gateway import Checks, Store, free_port  # noqa: E402

import keygate  # noqa: E402

BIN = sys.argv[1]
work = tempfile.mkdtemp(prefix="keygate-python-")
store, pub = os.path.join(work, "store"), os.path.join(work, "pub")
check = Checks(lambda: sorted(os.path.join(work, f) for f in os.listdir(work) if f.endswith(".log")))
kg = Store(BIN, store)
keys = kg.outcome_keys("acme_live", pub)
procs = []


def serve(app, server="uvicorn"):
    port = free_port()
    log = open(os.path.join(work, app.replace(":", "-") + ".log"), "w")
    if server == "uvicorn":
        argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning"]
    else:
        # Two worker processes: each loads its own verifier.
        argv = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--workers", "2",
                "--log-level", "warning"]
    p = subprocess.Popen(argv, cwd=HERE, env=dict(os.environ, KEYGATE_PUB=pub), stdout=log, stderr=log)
    procs.append(p)
    t0 = time.time()
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return port
        except requests.ConnectionError:
            check(p.poll() is None and time.time() - t0 < 20, f"{app} did not start")
            time.sleep(0.1)


def get(port, key=None, header="Authorization", extra=None):
    h = dict(extra or {})
    if key:
        h[header] = f"Bearer {key}" if header == "Authorization" else key
    return requests.get(f"http://127.0.0.1:{port}/invoices/5", headers=h, timeout=5)


try:
    # The library itself.
    v = keygate.Verifier.from_dir(pub, poll_interval=None)
    r = v.verify(keys["valid"], scope="invoices:read")
    check(r.outcome == "valid" and r.principal == "billing-service" and r.valid, f"verify: {r!r}")
    check(r.scopes == ["invoices:read"] and v.verify(keys["noscope"]).scopes == ["search:read"],
          f"the key's scopes: {r.scopes}")
    check(v.verify("acme_live_nope").scopes == [], "no scopes for a key not found")
    check(v.verify(keys["valid"].encode()).outcome == "valid", "verify takes bytes")
    check(v.verify(keys["noscope"], "invoices:read").outcome == "insufficient_scope", "scope")
    check(v.verify(keys["revoked"]).outcome == "revoked", "revoked")
    check(v.verify("acme_live_nope").outcome == "malformed" and v.verify("acme_live_nope").principal is None,
          "malformed")
    check(v.verify(keys["old"]).outcome == "valid_deprecated", "deprecated")
    check(keys["valid"] not in repr(v.verify(keys["valid"])), "a Verdict's repr holds no key")
    for bad, why in [(lambda: keygate.Verifier.from_dir(os.path.join(work, "nowhere")), OSError),
                     (lambda: keygate.Verifier.from_url(b"garbage", "http://127.0.0.1:1/"), ValueError),
                     (lambda: keygate.Verifier.from_url(b"x", "file:///etc/"), ValueError),
                     (lambda: keygate.Verifier.from_dir(pub, poll_interval=0), ValueError),
                     (lambda: keygate.Verifier.from_dir(pub, realm='a"b'), ValueError),
                     (lambda: v.verify(5), TypeError)]:
        try:
            bad()
            check(False, f"not refused: expected {why.__name__}")
        except why:
            pass

    fastapi_port, starlette_port = serve("apps:fastapi_app"), serve("apps:starlette_app")
    flask_port, django_port = serve("wsgi_apps:flask_app", "gunicorn"), serve("wsgi_apps:django_app", "gunicorn")
    servers = [("fastapi", fastapi_port), ("starlette", starlette_port), ("flask", flask_port),
               ("django", django_port)]
    for name, port in servers:
        r = get(port, keys["valid"])
        check(r.status_code == 200 and "billing-service" in r.text, f"{name} valid: {r.status_code} {r.text}")
        check(get(port, keys["valid"], header="X-API-Key").status_code == 200, f"{name}: X-API-Key")
        r = get(port)
        check(r.status_code == 401 and r.headers.get("www-authenticate") == 'Bearer realm="keygate"',
              f"{name} no key: {r.status_code} {r.headers}")
        for k, want in [("revoked", "revoked"), ("later", "not_yet_valid"), ("unknown", "unknown")]:
            r = get(port, keys[k])
            check(r.status_code == 401 and f'error_description="{want}"' in r.headers.get("www-authenticate", ""),
                  f"{name} {k}: {r.status_code} {r.headers}")
        r = get(port, keys["noscope"])
        check(r.status_code == 403 and 'error="insufficient_scope"' in r.headers.get("www-authenticate", ""),
              f"{name} scope: {r.status_code}")
        r = get(port, keys["old"])
        check(r.status_code == 200 and r.headers.get("deprecation", "").startswith("@")
              and r.headers.get("sunset", "").endswith("GMT"), f"{name} deprecated: {r.status_code} {r.headers}")
        r = get(port, keys["valid"], extra={"X-API-Key": keys["noscope"]})
        check(r.status_code == 400, f"{name}: two keys: {r.status_code}")
    # The FastAPI dependency hands the route the verdict, scopes included.
    r = get(fastapi_port, keys["valid"])
    check(r.json().get("scopes") == ["invoices:read"], f"fastapi: the key's scopes: {r.text}")
    # What the applications behind a middleware see: no key, the principal
    # set by the middleware (a client's own copy dropped).
    for name, port in servers[1:]:
        r = get(port, keys["valid"], extra={"X-Keygate-Principal": "admin"})
        check(r.text == "principal=billing-service auth=- verdict=billing-service\n", f"{name} sees: {r.text!r}")
        r = get(port, keys["unicode"])
        check(r.text.startswith("principal=z%C3%BCrich%20b%C3%BCro "), f"{name}: the principal header is ASCII: "
                                                                        f"{r.text!r}")

    # The client helper through a rotation while the FastAPI app runs:
    # requests every 10 ms, the key rotated and the new key handed to the
    # helper at once, then published: not one request refused.
    from keygate.client import RotatingKey
    import threading
    first = kg.issue("--principal", "client-svc", "--scope", "invoices:read")
    kg.run("publish", "--out", pub)
    t0 = time.time()
    while get(fastapi_port, first).status_code != 200:
        check(time.time() - t0 < 3, "the client's first key never worked")
        time.sleep(0.05)
    rk = RotatingKey(first)
    statuses, stop = [], [False]

    def client():
        while not stop[0]:
            statuses.append(rk.send(lambda key: get(fastapi_port, key)).status_code)
            time.sleep(0.01)
    th = threading.Thread(target=client)
    th.start()
    time.sleep(0.3)
    second = kg.run("rotate", "--principal", "client-svc", "--grace", "1d")
    second = __import__("json").loads(second)["key"]
    rk.offer_next(second)
    kg.run("publish", "--out", pub)
    t0 = time.time()
    while rk.in_use != second:
        check(time.time() - t0 < 3, "the helper never switched to the new key")
        time.sleep(0.02)
    time.sleep(0.3)
    stop[0] = True
    th.join()
    refused = [st for st in statuses if st != 200]
    check(not refused and len(statuses) > 20, f"client helper: {len(refused)} of {len(statuses)} refused: {refused[:5]}")
    check(second not in repr(rk) and first not in repr(rk), "the helper's repr holds no key")
    print(f"python client helper: {len(statuses)} requests through a rotation, 0 refused, switched after "
          f"{1000 * (time.time() - t0):.0f} ms")

    # Its rules, against gateways that answer as the contract says.
    class Resp:
        def __init__(self, status, **headers):
            self.status_code, self.headers = status, {k.replace("_", "-"): v for k, v in headers.items()}
    seen_keys = []

    def gateway(known, revoked=(), deprecated=()):
        def call(key):
            seen_keys.append(key)
            if key in revoked:
                return Resp(401, www_authenticate='Bearer error="invalid_token", error_description="revoked"')
            if key not in known:
                return Resp(401, www_authenticate='Bearer error="invalid_token", error_description="unknown"')
            return Resp(200, **({"deprecation": "@1"} if key in deprecated else {}))
        return call
    rk = RotatingKey("old", "new", retry_after=0)
    check(rk.send(gateway({"old"})).status_code == 200 and rk.in_use == "old", "no signal: stays on the key in use")
    check(rk.send(gateway({"old"}, deprecated={"old"})).status_code == 200 and rk.in_use == "new",
          "Deprecation: the next request uses the next key")
    check(rk.send(gateway({"old"})).status_code == 200 and rk.in_use == "old",
          "the next key unknown at this gateway: the same request again with the old key, and back to it")
    check(rk.send(gateway({"old", "new"}, deprecated={"old"})).status_code == 200 and rk.in_use == "new",
          "switched again once the gateway knows it")
    rk = RotatingKey("leaked", "fresh")
    check(rk.send(gateway({"fresh"}, revoked={"leaked"})).status_code == 200 and rk.in_use == "fresh",
          "revoked: the same request with the next key")
    rk = RotatingKey("leaked", "fresh")
    r = rk.send(gateway(set(), revoked={"leaked"}))
    check(r.status_code == 401 and rk.in_use == "leaked", "revoked and the next key not loaded yet: the refusal")

    # A revocation while both servers run: refused within the poll (1 s) + 1 s.
    for _, port in servers:
        check(get(port, keys["to_revoke"]).status_code == 200, "before the revoke")
    kg.run("revoke", "--key", keys["to_revoke"])
    t0 = time.time()
    kg.run("publish", "--out", pub)
    for name, port in servers:
        while get(port, keys["to_revoke"]).status_code == 200:
            check(time.time() - t0 < 2.0, f"{name}: revocation not in force within 2 s")
            time.sleep(0.02)
        print(f"python {name}: revocation in force {1000 * (time.time() - t0):.0f} ms after the publish")
    m = requests.get(f"http://127.0.0.1:{fastapi_port}/metrics", timeout=5).text
    check(re.search(r'^keygate_verify_total\{outcome="valid"\} [1-9]', m, re.M) is not None, f"metrics: {m[:300]}")
    check(all(k not in m for k in keys.values()), "no key in the metrics")
    print(f"python package: {check.count} checks passed")

    # Same run: the verify call against the peer a user would write (the
    # keys' SHA-256 in a dict). A figure, not a test: targets live in
    # docs/PERFORMANCE.md.
    n, key = 200_000, keys["valid"]
    table = {hashlib.sha256(k.encode()).digest(): "p" for k in keys.values()}
    best = {}
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            v.verify(key)
        best["keygate"] = min(best.get("keygate", 1e9), (time.perf_counter() - t) / n * 1e9)
        t = time.perf_counter()
        for _ in range(n):
            table.get(hashlib.sha256(key.encode()).digest())
        best["hashlib"] = min(best.get("hashlib", 1e9), (time.perf_counter() - t) / n * 1e9)
    print(f"python verify call: keygate {best['keygate']:.0f} ns, hashlib + dict {best['hashlib']:.0f} ns "
          f"(keygate / peer {best['keygate'] / best['hashlib']:.2f}x; best of 3 rounds of {n})")
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
