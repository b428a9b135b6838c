"""The native module in real nginx on 127.0.0.1: every outcome over HTTP to a
proxied upstream, a revocation enforced within one reload interval, reloads
under traffic (including corrupted artifacts) with 0 non-2xx, and no key in
the logs. Usage: python3 test_nginx.py KEYGATE_BIN MODULE_SO"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../testlib"))
from gateway import Checks, Store, free_port, new_keys_through_the_update, serve as serve_http, upstream_handler  # noqa: E402
import conformance  # noqa: E402

BIN, MODULE = sys.argv[1], sys.argv[2]
MODE = sys.argv[3] if len(sys.argv) > 3 else "native"  # or "lua" (resty.keygate; MODULE = libkeygate .so)
HERE = os.path.dirname(os.path.abspath(__file__))
work = tempfile.mkdtemp(prefix="keygate-nginx-")
os.chmod(work, 0o755)  # nginx workers run as an unprivileged user
store, pub = os.path.join(work, "store"), os.path.join(work, "pub")


kg = Store(BIN, store).run


keys = Store(BIN, store).outcome_keys("edge_live", pub)
# Two keys revoked one after the other within a second (same-size updates).
keys["second_a"] = Store(BIN, store).issue("--principal", "second-a", "--scope", "invoices:read")
keys["second_b"] = Store(BIN, store).issue("--principal", "second-b", "--scope", "invoices:read")
kg("publish", "--out", pub)
first_snapshot = open(os.path.join(pub, "snapshot.kgs"), "rb").read()
# The state directory must be writable by the worker user (nobody here).
os.makedirs(os.path.join(work, "state"))
os.chmod(os.path.join(work, "state"), 0o777)
state_file = os.path.join(work, "state", "keygate.state")
recorder = conformance.Recorder()
rec = serve_http(upstream_handler(recorder))

port, up = free_port(), free_port()
conf = os.path.join(work, "nginx.conf")
serve_port, serve_metrics_port = free_port(), free_port()


def guard(scope):
    if MODE == "authreq":
        return (f"auth_request /_keygate_{scope.split(':')[0]};"
                " auth_request_set $kg_principal $upstream_http_x_keygate_principal;"
                " auth_request_set $kg_www $upstream_http_www_authenticate;"
                " auth_request_set $kg_dep $upstream_http_deprecation;"
                " auth_request_set $kg_sunset $upstream_http_sunset;"
                " add_header Deprecation $kg_dep always; add_header Sunset $kg_sunset always;"
                " error_page 403 = @kg403;"
                " proxy_set_header X-Keygate-Principal $kg_principal;")
    if MODE == "native":
        return f"keygate on; keygate_scope {scope}; proxy_set_header X-Keygate-Principal $keygate_principal;"
    return (f'access_by_lua_block {{ require("resty.keygate").access({{ scope = "{scope}" }}) }}'
            ' header_filter_by_lua_block { require("resty.keygate").header_filter() }')


if MODE == "native":
    head = f"load_module {MODULE};"
    http_extra = f"""
    log_format kg '$remote_addr "$request" $status $keygate_outcome $keygate_principal $keygate_key_id';
    access_log {work}/access.log kg;
    keygate_trust {pub}/trust.kgt;
    keygate_snapshot {pub}/snapshot.kgs;
    keygate_revocations {pub}/revocations.kgr;
    keygate_reload_interval 200ms;
    keygate_state {state_file};"""
    metrics = "keygate_metrics;"
elif MODE == "authreq":
    head = ""
    http_extra = f"access_log {work}/access.log;"
    metrics = f"proxy_pass http://127.0.0.1:{serve_metrics_port}/metrics;"
else:
    head = ("load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
            "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;")
    http_extra = f"""
    access_log {work}/access.log;
    lua_package_path "{HERE}/../lua/lib/?.lua;;";
    lua_shared_dict keygate_stats 1m;
    init_worker_by_lua_block {{
        require("resty.keygate").init({{ lib = "{MODULE}", trust = "{pub}/trust.kgt",
            snapshot = "{pub}/snapshot.kgs", revocations = "{pub}/revocations.kgr", interval = 0.2,
            state = "{state_file}", stats_dict = "keygate_stats" }})
    }}"""
    metrics = 'content_by_lua_block { require("resty.keygate").metrics() }'

authreq_locations = "" if MODE != "authreq" else "".join(
    f"""location = /_keygate_{name} {{ internal; proxy_pass http://127.0.0.1:{serve_port};
            proxy_pass_request_body off; proxy_set_header Content-Length "";
            proxy_set_header X-Keygate-Scope "{name}:read"; }}
        """ for name in ("invoices", "search")) + """location @kg403 { add_header WWW-Authenticate $kg_www always; return 403; }"""
# The contract's table goes through the module's own header handling (no
# proxy_set_header); behind auth_request the proxy config must strip and set.
if MODE == "native":
    conformance_guard = "keygate on; keygate_scope invoices:read;"
elif MODE == "lua":
    conformance_guard = guard("invoices:read")
else:
    conformance_guard = (guard("invoices:read") + ' proxy_set_header Authorization "";'
                         ' proxy_set_header X-API-Key "";')
serve = None
if MODE == "authreq":
    # The anchor is pinned from a copy; nginx sets X-Keygate-Scope itself
    # (replacing any client copy), so serve may trust that header here.
    pinned = os.path.join(work, "pinned-trust.kgt")
    shutil.copy(os.path.join(pub, "trust.kgt"), pinned)
    serve = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{serve_port}", "--trust", pinned,
                              "--artifacts-dir", pub, "--trust-scope-header",
                              "--metrics-listen", f"127.0.0.1:{serve_metrics_port}",
                              "--poll", "200ms"], stderr=subprocess.DEVNULL)

with open(conf, "w") as f:
    f.write(f"""
{head}
worker_processes {2 if MODE != "authreq" else 1};
error_log {work}/error.log notice;  # info would log a repeated header line, key included (docs/security.md)
pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
    {http_extra}
    server {{
        listen 127.0.0.1:{up};
        location / {{ return 200 "principal=$http_x_keygate_principal auth=$http_authorization\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            {guard("invoices:read")}
            proxy_set_header Authorization "";
            proxy_pass http://127.0.0.1:{up};
        }}
        location /whoami {{
            {guard("invoices:read")}
            add_header X-Worker $pid always;
            proxy_pass http://127.0.0.1:{up};
        }}
        location /search/ {{
            {guard("search:read")}
            proxy_pass http://127.0.0.1:{up};
        }}
        location = /metrics {{ {metrics} }}
        location /conformance {{
            {conformance_guard}
            proxy_pass http://127.0.0.1:{rec.server_address[1]};
        }}
        {authreq_locations}
    }}
}}
""")

def refused_config(directives):
    """`nginx -t` on a location with `directives`: (refused?, what nginx said)."""
    bad = os.path.join(work, "bad.conf")
    with open(bad, "w") as f:
        f.write(f"""{head}
pid {work}/bad.pid; error_log {work}/bad.log;
events {{ }}
http {{ {http_extra}
    server {{ listen 127.0.0.1:{free_port()}; location / {{ {directives} return 200; }} }}
}}
""")
    r = subprocess.run(["nginx", "-t", "-p", work, "-c", bad], capture_output=True, text=True)
    return r.returncode != 0, r.stderr


nginx = subprocess.Popen(["nginx", "-p", work, "-c", conf, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
check = Checks(lambda: [os.path.join(work, "error.log")])


def get(path, key=None, header="Authorization"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    h = {}
    if key:
        h[header] = f"Bearer {key}" if header == "Authorization" else key
    c.request("GET", path, headers=h)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


try:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    st, h, body = get("/invoices", keys["valid"])
    check(st == 200 and "principal=billing-service" in body, f"valid: {st} {body}")
    check("auth=\n" in body or body.strip().endswith("auth="), f"the key is not forwarded upstream: {body}")
    st, h, body = get("/invoices", keys["valid"], header="X-API-Key")
    check(st == 200 and "billing-service" in body, f"X-API-Key: {st}")
    st, h, body = get("/invoices", keys["old"])
    check(st == 200 and h.get("deprecation", "").startswith("@") and h.get("sunset", "").endswith("GMT"),
          f"deprecated: {st} {h}")
    st, h, _ = get("/invoices", keys["rotated"])
    check(st == 200 and "deprecation" not in h, "rotated key is plain valid")
    st, h, _ = get("/invoices")
    check(st == 401 and h.get("www-authenticate") == 'Bearer realm="keygate"', f"no key: {st} {h}")
    for k, want in [("revoked", "revoked"), ("later", "not_yet_valid")]:
        st, h, _ = get("/invoices", keys[k])
        check(st == 401 and f'error_description="{want}"' in h.get("www-authenticate", ""), f"{k}: {st} {h}")
    st, h, _ = get("/invoices", "edge_live_nope")
    check(st == 401 and 'error="invalid_token"' in h.get("www-authenticate", ""), f"malformed: {st}")
    st, h, _ = get("/invoices", keys["noscope"])
    check(st == 403 and 'error="insufficient_scope"' in h.get("www-authenticate", ""), f"scope: {st} {h}")
    st, _, body = get("/search/q", keys["noscope"])
    check(st == 200 and "search-indexer" in body, "per-location scope")

    if MODE == "native":
        # Settings the contract does not allow are refused when nginx loads
        # the configuration, not met at the first request.
        for directives, said in [('keygate on; keygate_realm "a\\"b";', "keygate_realm"),
                                 ("keygate on; keygate_principal_header X-API-Key;", "keygate_principal_header"),
                                 ("keygate on; keygate_principal_header \"bad name\";", "keygate_principal_header"),
                                 ("keygate on; keygate_key_source header:Cookie;", "keygate_key_source"),
                                 ("keygate on; keygate_retry_after 99999999999;", "keygate_retry_after")]:
            refused, err = refused_config(directives)
            check(refused and said in err, f"nginx -t accepted or misnamed {directives!r}: {err[-300:]}")
        check(not refused_config("keygate on; keygate_key_source header:Authorization:Bearer header:X-API-Key;")[0],
              "the contract's own key sources, spelled out, still load")

    # The gateway contract's table, and what the upstream received.
    skip = {}
    if MODE == "authreq":
        why = "nginx auth_request turns any subrequest status but 2xx/401/403 into 500 (serve answers 400)"
        skip = {n: why for n in ("two different keys", "two x-api-key headers", "two authorization headers")}
    host = {"two authorization headers": "nginx refuses a repeated Authorization line itself (400, no challenge)"}
    conformance.run(check, f"nginx {MODE}", port, keys, recorder, skip, host)

    # Two revocations published within one second, the second update the
    # same size as the first: both enforced (a whole-second mtime + size
    # check missed the second).
    for k in ("second_a", "second_b"):
        check(get("/invoices", keys[k])[0] == 200, f"{k} before revoke")
    sizes = []
    t0 = time.time()
    for k in ("second_a", "second_b"):
        kg("revoke", "--key", keys[k])
        kg("publish", "--out", pub, "--revocations-only")
        sizes.append(os.path.getsize(os.path.join(pub, "revocations.kgr")))
    check(time.time() - t0 < 1.0, "the two publishes took over a second; the test would not show the bug")
    while get("/invoices", keys["second_b"])[0] == 200 or get("/invoices", keys["second_a"])[0] == 200:
        check(time.time() - t0 < 1.5, f"second revocation in the same second not enforced (update sizes {sizes})")
        time.sleep(0.02)
    print(f"nginx: two revocations within a second (update sizes {sizes}) enforced "
          f"{1000 * (time.time() - t0):.0f} ms after the first publish")

    # Revocation within one reload interval (200 ms) after the update is written.
    check(get("/invoices", keys["to_revoke"])[0] == 200, "before revoke")
    kg("revoke", "--key", keys["to_revoke"])
    t0 = time.time()
    kg("publish", "--out", pub, "--revocations-only")
    while get("/invoices", keys["to_revoke"])[0] == 200:
        check(time.time() - t0 < 1.2, "revocation not enforced within interval + 1 s")
        time.sleep(0.02)
    print(f"nginx: revocation enforced {1000 * (time.time() - t0):.0f} ms after publish (interval 200 ms)")

    # Keys issued and rotated after the snapshot reach nginx in the update.
    new_keys_through_the_update(Store(BIN, store), pub, keys, lambda k: get("/invoices", k)[:2], check,
                                f"nginx {MODE}", within=1.2)

    # Reload under traffic: 50 artifact replacements, some corrupted; 0 non-2xx.
    bad, total, stop = [0], [0], threading.Event()

    def traffic():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while not stop.is_set():
            c.request("GET", "/invoices", headers={"Authorization": f"Bearer {keys['valid']}"})
            r = c.getresponse()
            r.read()
            total[0] += 1
            if r.status != 200:
                bad[0] += 1

    th = threading.Thread(target=traffic)
    th.start()
    snap = os.path.join(pub, "snapshot.kgs")
    for i in range(50):
        if i % 3 == 2:
            good = open(snap, "rb").read()
            with open(snap + ".tmp", "wb") as f:
                f.write(good[: len(good) // 2])  # truncated: refused, state kept
            os.replace(snap + ".tmp", snap)
        else:
            kg("publish", "--out", pub)
        time.sleep(0.06)
    # A truncated snapshot that stays longer than two polls (200 ms): the
    # refusal is seen for certain, not by the chance of a 60 ms window.
    good = open(snap, "rb").read()
    with open(snap + ".tmp", "wb") as f:
        f.write(good[: len(good) // 2])
    os.replace(snap + ".tmp", snap)
    time.sleep(0.5)
    kg("publish", "--out", pub)
    time.sleep(0.5)
    stop.set()
    th.join()
    print(f"nginx: {total[0]} requests during 50 artifact replacements, {bad[0]} non-2xx")
    check(bad[0] == 0 and total[0] > 100, f"{bad[0]} of {total[0]} requests failed during reloads")
    err = open(os.path.join(work, "error.log")).read()
    if MODE != "authreq":
        check("refused" in err, "refused artifacts are logged at error")

    st, _, metrics = get("/metrics")
    check(st == 200 and 'keygate_verify_total{outcome="valid"}' in metrics, "metrics")
    if MODE != "authreq":
        # Two worker processes, one /metrics: every worker's verifies added up.
        def valid_count():
            body = get("/metrics")[2]
            return int(re.search(r'keygate_verify_total\{outcome="valid"\} (\d+)', body).group(1))
        before, pids = valid_count(), set()
        for _ in range(60):  # a new connection each: the kernel spreads them over the workers
            st, h, _ = get("/whoami", keys["valid"])
            check(st == 200, f"whoami: {st}")
            pids.add(h.get("x-worker"))
        check(len(pids) == 2, f"requests did not reach both workers ({pids}): the sum below would prove nothing")
        t0 = time.time()
        while valid_count() < before + 60:
            check(time.time() - t0 < 2, f"/metrics does not add the workers up: {valid_count()} < {before} + 60")
            time.sleep(0.1)
        print(f"nginx {MODE}: /metrics adds both workers up ({valid_count() - before} valid verifies over {pids})")
    logs = open(os.path.join(work, "access.log")).read() + err
    # The conformance table sends one key in a URL on purpose: a URL is
    # logged whole by any access log, which is why a query string is never
    # a key source.
    logs = "\n".join(l for l in logs.splitlines() if "?api_key=" not in l)
    for name, k in keys.items():
        where = [l for l in logs.splitlines() if k in l][:2]
        check(k not in logs, f"key {name} appears in the logs: {where}")
    if MODE == "native":
        check(" valid_deprecated mobile-app " in logs, "variables in the access log")
    if MODE != "authreq":
        # The high-water marks survive a restart: new workers (HUP) that find
        # an older snapshot in place refuse it as a rollback.
        state = open(state_file).read()
        check("snapshot " in state, f"state file written: {state!r}")
        newest = open(os.path.join(pub, "snapshot.kgs"), "rb").read()
        with open(os.path.join(pub, "snapshot.kgs.tmp"), "wb") as f:
            f.write(first_snapshot)
        os.replace(os.path.join(pub, "snapshot.kgs.tmp"), os.path.join(pub, "snapshot.kgs"))
        nginx.send_signal(signal.SIGHUP)
        t0 = time.time()
        while "rollback" not in open(os.path.join(work, "error.log")).read():
            check(time.time() - t0 < 5, "new workers did not refuse the older snapshot as a rollback")
            time.sleep(0.05)
        # Old workers finish gracefully; once only new ones answer, every
        # request is 503 (the older snapshot refused, nothing installed).
        t0, streak = time.time(), 0
        while streak < 10:
            st = get("/invoices", keys["valid"])[0]
            streak = streak + 1 if st == 503 else 0
            check(time.time() - t0 < 5, f"after a restart onto an older snapshot: {st}, want 503")
        with open(os.path.join(pub, "snapshot.kgs.tmp"), "wb") as f:
            f.write(newest)
        os.replace(os.path.join(pub, "snapshot.kgs.tmp"), os.path.join(pub, "snapshot.kgs"))
        t0 = time.time()
        while get("/invoices", keys["valid"])[0] != 200:
            check(time.time() - t0 < 2, "the newest snapshot was not picked up again")
            time.sleep(0.05)
        print("nginx: a restart onto an older snapshot refused it (state file); the newest loads again")
    print(f"nginx {MODE}: revocation and reload checks done")
    print(f"nginx module: {check.count} checks passed ({MODE})")
finally:
    if serve:
        serve.kill()
    rec.shutdown()
    nginx.send_signal(signal.SIGQUIT)
    try:
        nginx.wait(timeout=5)
    except subprocess.TimeoutExpired:
        nginx.kill()
    shutil.rmtree(work, ignore_errors=True)
