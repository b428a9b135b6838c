"""Issuer API throughput and latency, same run, same machine (issue 17):
issues through `keygate api` (SQLite) from several client threads, against the
CLI's bulk issue of as many keys, and revoke -> published latency.
Usage: python3 cli/bench/api_bench.py KEYGATE_BIN [ISSUES] [THREADS]
(build first: cargo build --release -p keygate-cli)"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
THREADS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
work = tempfile.mkdtemp(prefix="keygate-api-bench-")


def kg(store, *args):
    return subprocess.run([BIN, "--store", store, "--json", *args], check=True, capture_output=True, text=True).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


try:
    # The CLI's bulk issue: one transaction for all.
    cli_store = os.path.join(work, "cli")
    kg(cli_store, "init", "--keyset", "bench", "--prefix", "bench_live")
    t0 = time.time()
    kg(cli_store, "issue", "--principal", "bulk", "--count", str(N), "--keys-out", os.path.join(work, "bulk.keys"))
    cli_s = time.time() - t0

    store, pub = os.path.join(work, "store"), os.path.join(work, "pub")
    kg(store, "init", "--keyset", "bench", "--prefix", "bench_live")
    admin = json.loads(kg(store, "admin-key", "--principal", "bench", "--scope", "keys:write", "--scope", "keys:read"))["key"]
    port = free_port()
    api = subprocess.Popen([BIN, "--store", store, "api", "--listen", f"127.0.0.1:{port}", "--publish-to", pub,
                            "--publish-delay", os.environ.get("PUBLISH_DELAY", "1s")], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)

    lat, errors = [], []

    def client(t):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(N // THREADS):
            body = json.dumps({"principal": f"customer-{t}-{i}", "scopes": ["invoices:read"]})
            s = time.perf_counter()
            c.request("POST", "/v1/keys", body, {"Authorization": f"Bearer {admin}", "Idempotency-Key": f"{t}-{i}"})
            r = c.getresponse()
            r.read()
            lat.append(time.perf_counter() - s)
            if r.status != 201:
                errors.append(r.status)

    t0 = time.time()
    ths = [threading.Thread(target=client, args=(t,)) for t in range(THREADS)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    api_s = time.time() - t0
    n = len(lat)
    print(f"api issue (SQLite, 1 instance, {THREADS} client threads, Idempotency-Key on each): {n} keys in {api_s:.2f} s"
          f" = {n / api_s:.0f} keys/s; p50 {1000 * pct(lat, 50):.1f} ms, p99 {1000 * pct(lat, 99):.1f} ms;"
          f" {len(errors)} errors")
    print(f"CLI bulk issue (one transaction): {N} keys in {cli_s:.2f} s = {N / cli_s:.0f} keys/s"
          f" (api / bulk: {(n / api_s) / (N / cli_s):.2f}x)")

    # The same through wrk (C, not a Python client): 2 threads, 16
    # connections, each request a new key with its own Idempotency-Key.
    if shutil.which("wrk"):
        lua = os.path.join(work, "issue.lua")
        with open(lua, "w") as f:
            f.write(f"""
local threads, n, id = 0, 0, 0
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function init(args) id = wrk.thread:get("id") end
function request()
  n = n + 1
  return wrk.format("POST", "/v1/keys", {{["Authorization"] = "Bearer {admin}",
    ["Idempotency-Key"] = "wrk-" .. id .. "-" .. n}}, '{{"principal":"wrk-' .. id .. '-' .. n .. '"}}')
end
""")
        out = subprocess.run(["wrk", "-t2", "-c16", "-d5s", "--latency", "-s", lua, f"http://127.0.0.1:{port}"],
                             capture_output=True, text=True).stdout
        rps = [l for l in out.splitlines() if l.startswith("Requests/sec")]
        p50 = [l.split()[1] for l in out.splitlines() if l.strip().startswith("50%")]
        p99 = [l.split()[1] for l in out.splitlines() if l.strip().startswith("99%")]
        non2xx = [l for l in out.splitlines() if "Non-2xx" in l]
        print(f"api issue via wrk (2 threads, 16 connections, 5 s): {rps[0].split()[1] if rps else '?'} keys/s;"
              f" p50 {p50[0] if p50 else '?'}, p99 {p99[0] if p99 else '?'}; {non2xx[0].strip() if non2xx else '0 non-2xx'}")
    else:
        print("api issue via wrk: SKIPPED (wrk not installed)")

    # Revoke -> published: each revoke, then poll the published update.
    ids = [k["key_id"] for k in json.loads(kg(store, "list"))[:20]]
    time.sleep(1.5)  # the issues above are published first
    rev = []
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for kid in ids:
        before = os.stat(os.path.join(pub, "revocations.kgr")).st_mtime_ns
        s = time.perf_counter()
        c.request("POST", f"/v1/keys/{kid}/revoke", "{}", {"Authorization": f"Bearer {admin}"})
        c.getresponse().read()
        while os.stat(os.path.join(pub, "revocations.kgr")).st_mtime_ns == before:
            time.sleep(0.002)
            if time.perf_counter() - s > 5:
                break
        rev.append(time.perf_counter() - s)
    print(f"revoke -> published update ({len(rev)} revokes, publisher polls every 100 ms):"
          f" p50 {1000 * pct(rev, 50):.0f} ms, p99 {1000 * pct(rev, 99):.0f} ms, max {1000 * max(rev):.0f} ms")
    api.terminate()
finally:
    shutil.rmtree(work, ignore_errors=True)
