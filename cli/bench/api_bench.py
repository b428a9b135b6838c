"""Issuer API throughput and latency, same run, same machine (issue 17):
issues through `keygate api` from several client threads — on SQLite, on
PostgreSQL with one instance and with two instances sharing the store —
against the CLI's bulk issue of as many keys, and revoke -> published latency.
Usage: python3 cli/bench/api_bench.py KEYGATE_BIN [ISSUES] [THREADS]
(build first: cargo build --release -p keygate-cli). The PostgreSQL rows need
a cluster: run under scripts/with-postgres.sh (it sets KEYGATE_TEST_PG);
without one they say SKIPPED."""
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
PG = os.environ.get("KEYGATE_TEST_PG")
work = tempfile.mkdtemp(prefix="keygate-api-bench-")
ENV = dict(os.environ, KEYGATE_SEAL_KEY_FILE=os.path.join(work, "seal.key"))


def kg(store, *args):
    return subprocess.run([BIN, "--store", store, "--json", *args], check=True, capture_output=True, text=True,
                          env=ENV).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def pg_database(name):
    subprocess.run(["psql", "-q", PG, "-c", f"DROP DATABASE IF EXISTS {name}", "-c", f"CREATE DATABASE {name}"],
                   check=True, capture_output=True)
    return PG.rsplit("/", 1)[0] + "/" + name


def store_for(engine, name):
    return os.path.join(work, name) if engine == "SQLite" else pg_database(name)


def cli_bulk(engine):
    store = store_for(engine, "bulk")
    kg(store, "init", "--keyset", "bench", "--prefix", "bench_live")
    t0 = time.time()
    kg(store, "issue", "--principal", "bulk", "--count", str(N), "--keys-out", os.path.join(work, f"bulk-{engine}.keys"))
    s = time.time() - t0
    os.remove(os.path.join(work, f"bulk-{engine}.keys"))
    print(f"CLI bulk issue ({engine}, one transaction): {N} keys in {s:.2f} s = {N / s:.0f} keys/s")
    return N / s


def start_api(store, pub):
    port = free_port()
    p = subprocess.Popen([BIN, "--store", store, "api", "--listen", f"127.0.0.1:{port}", "--publish-to", pub,
                          "--publish-delay", os.environ.get("PUBLISH_DELAY", "1s")], stderr=subprocess.DEVNULL, env=ENV)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return p, port


def api_run(engine, instances, bulk_rate):
    label = f"{engine}, {instances} instance{'s' if instances > 1 else ''}"
    store, pub = store_for(engine, f"api{instances}"), os.path.join(work, f"pub-{engine}-{instances}")
    kg(store, "init", "--keyset", "bench", "--prefix", "bench_live")
    admin = json.loads(kg(store, "admin-key", "--principal", "bench", "--scope", "keys:write",
                          "--scope", "keys:read"))["key"]
    apis = [start_api(store, pub) for _ in range(instances)]
    ports = [p for _, p in apis]
    lat, errors = [], []

    def client(t):
        # Clients spread over the instances, as a load balancer would.
        c = http.client.HTTPConnection("127.0.0.1", ports[t % len(ports)], timeout=30)
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
    print(f"api issue ({label}, {THREADS} client threads, Idempotency-Key on each): {n} keys in {api_s:.2f} s"
          f" = {n / api_s:.0f} keys/s ({n / api_s / instances:.0f} per instance); p50 {1000 * pct(lat, 50):.1f} ms,"
          f" p99 {1000 * pct(lat, 99):.1f} ms; {len(errors)} errors; api / CLI bulk: {(n / api_s) / bulk_rate:.2f}x")

    # The same through wrk (C, not a Python client): 2 threads and 16
    # connections in all, each request a new key with its own
    # Idempotency-Key; with two instances one wrk per instance (1 thread,
    # 8 connections each), at the same time.
    if shutil.which("wrk"):
        lua = os.path.join(work, "issue.lua")
        with open(lua, "w") as f:
            f.write(f"""
local threads, n, id = 0, 0, 0
function setup(thread) threads = threads + 1; thread:set("id", threads) end
function init(args) id = wrk.thread:get("id") .. "-" .. args[1] end
function request()
  n = n + 1
  return wrk.format("POST", "/v1/keys", {{["Authorization"] = "Bearer {admin}",
    ["Idempotency-Key"] = "wrk-" .. id .. "-" .. n}}, '{{"principal":"wrk-' .. id .. '-' .. n .. '"}}')
end
""")
        per = 16 // instances
        runs = [subprocess.Popen(["wrk", f"-t{max(1, 2 // instances)}", f"-c{per}", "-d5s", "--latency", "-s", lua,
                                  f"http://127.0.0.1:{port}", "--", str(j)], stdout=subprocess.PIPE, text=True)
                for j, port in enumerate(ports)]
        outs = [r.communicate()[0] for r in runs]

        def field(out, start):
            found = [l.split()[1] for l in out.splitlines() if l.strip().startswith(start)]
            return found[0] if found else "?"
        rates = [float(field(o, "Requests/sec")) for o in outs if field(o, "Requests/sec") != "?"]
        non2xx = sum(int(l.split()[-1]) for o in outs for l in o.splitlines() if "Non-2xx" in l)
        print(f"api issue via wrk ({label}, 2 threads, 16 connections in all, 5 s): {sum(rates):.0f} keys/s"
              f" ({sum(rates) / instances:.0f} per instance: {', '.join(f'{r:.0f}' for r in rates)});"
              f" p50 {', '.join(field(o, '50%') for o in outs)}, p99 {', '.join(field(o, '99%') for o in outs)};"
              f" {non2xx} non-2xx")
    else:
        print("api issue via wrk: SKIPPED (wrk not installed)")

    # Revoke -> published: each revoke, then poll the published update.
    keys = json.loads(kg(store, "list"))
    ids = [k["key_id"] for k in keys[:20]]
    time.sleep(float(os.environ.get("PUBLISH_DELAY", "1s").rstrip("s")) + 1.0)  # the issues above are published first
    rev = []
    for j, kid in enumerate(ids):
        c = http.client.HTTPConnection("127.0.0.1", ports[j % len(ports)], timeout=30)
        before = os.stat(os.path.join(pub, "revocations.kgr")).st_mtime_ns
        s = time.perf_counter()
        c.request("POST", f"/v1/keys/{kid}/revoke", "{}", {"Authorization": f"Bearer {admin}"})
        c.getresponse().read()
        while os.stat(os.path.join(pub, "revocations.kgr")).st_mtime_ns == before:
            time.sleep(0.002)
            if time.perf_counter() - s > 5:
                break
        rev.append(time.perf_counter() - s)
    print(f"revoke -> published update ({label}, {len(keys)} keys, {len(rev)} revokes, publisher polls every 100 ms):"
          f" p50 {1000 * pct(rev, 50):.0f} ms, p99 {1000 * pct(rev, 99):.0f} ms, max {1000 * max(rev):.0f} ms")
    for p, _ in apis:
        p.terminate()
        p.wait()


try:
    sqlite_bulk = cli_bulk("SQLite")
    api_run("SQLite", 1, sqlite_bulk)
    if PG:
        pg_bulk = cli_bulk("PostgreSQL")
        api_run("PostgreSQL", 1, pg_bulk)
        api_run("PostgreSQL", 2, pg_bulk)
    else:
        print("api issue (PostgreSQL): SKIPPED (no KEYGATE_TEST_PG: run under scripts/with-postgres.sh)")
finally:
    shutil.rmtree(work, ignore_errors=True)
