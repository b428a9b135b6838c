"""Runs every fenced block of docs/clients.md and docs/integrations/*.md, so the
pages cannot rot: shell commands run, configs are loaded into the real gateway
they are written for (nginx, OpenResty-style Lua in nginx, Envoy, Caddy) on
127.0.0.1, client snippets (curl, Python requests, JavaScript fetch) call those
gateways, and the C example is compiled against the installed library and run.
A block that no step below takes fails the run, so a new snippet needs a test.
The Rust page's example is a doctest (src/lib.rs), the runbooks have their own
test (cli/tests/runbooks.rs).

The only edits made to a block are the ones a reader makes: paths
(/srv/keygate, /path/to, /usr/local, /etc/envoy, /etc/keygate), addresses
(backend, api.example.com, keys.example.com, 127.0.0.1:8787,
127.0.0.1:3000, 127.0.0.1:8000) and a key where a page shows `acme_live_…`, and a `listen` line plus the process
boilerplate (pid, error_log, temp paths) around a config fragment.

Usage: python3 test_docs.py KEYGATE_BIN PYTHON_WITH_REQUESTS ENVOY"""
import base64
import http.client
import json
import urllib.request
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../.."))
sys.path.insert(0, os.path.join(ROOT, "bindings/testlib"))
from gateway import Checks, Store, free_port, serve, upstream_handler  # noqa: E402
import conformance  # noqa: E402

BIN, VENV_PY, ENVOY = sys.argv[1], sys.argv[2], sys.argv[3]
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
work = tempfile.mkdtemp(prefix="keygate-docs-")
os.chmod(work, 0o755)  # nginx workers run as an unprivileged user
store, pub = os.path.join(work, "store"), os.path.join(work, "pub")
procs = []


# --- the blocks ---------------------------------------------------------------

def fenced_blocks(path):
    blocks, cur, lang = [], None, None
    for line in open(path):
        fence = re.match(r"^```(\S*)\s*$", line)
        if fence and cur is None:
            cur, lang = [], fence.group(1)
        elif fence:
            blocks.append((lang, "".join(cur)))
            cur = None
        elif cur is not None:
            cur.append(line)
    assert cur is None, f"{path}: unterminated fence"
    return blocks


PAGES = ["clients.md"] + sorted("integrations/" + p for p in os.listdir(os.path.join(ROOT, "docs/integrations")))
ALL = {(page, i): b for page in PAGES for i, b in enumerate(fenced_blocks(os.path.join(ROOT, "docs", page)))}
taken = {}


def take(page, i, lang, how):
    """The block `i` of `page`, which must be a `lang` block; `how` says what checks it."""
    got = ALL.get((page, i))
    check(got is not None, f"docs/{page} has no block {i}")
    check(got[0] == lang, f"docs/{page} block {i} is `{got[0]}`, the test expects `{lang}`")
    taken[(page, i)] = how
    return got[1]


# --- helpers ------------------------------------------------------------------

check = Checks(lambda: sorted(os.path.join(work, f) for f in os.listdir(work) if f.endswith(".log")))


def sh(script, cwd=ROOT, env=None):
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    check(r.returncode == 0, f"shell block failed ({r.returncode}):\n{script}\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout


def run_sh_block(text, subst=(), cwd=ROOT, env=None):
    """Runs a shell block line by line; `apt install` lines are checked against dpkg
    (the test suite's setup installs them), the rest run as written."""
    for a, b in subst:
        text = text.replace(a, b)
    out = ""
    for line in text.splitlines():
        cmd = line.split(" #")[0].strip()
        if not cmd:
            continue
        if cmd.startswith("apt install "):
            for pkg in cmd.split()[2:]:
                r = subprocess.run(["dpkg", "-s", pkg], capture_output=True)
                check(r.returncode == 0, f"documented package {pkg} is not installed")
            continue
        out += sh(cmd, cwd=cwd, env=env)
    return out


def wait_port(port, what, proc=None):
    t0 = time.time()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            check(proc is None or proc.poll() is None, f"{what} exited with {proc and proc.returncode}")
            check(time.time() - t0 < 20, f"{what} did not start")
            time.sleep(0.05)


def start(name, argv, env=None):
    log = open(os.path.join(work, name + ".log"), "w")
    p = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, **(env or {})})
    procs.append(p)
    return p


def get(port, path, key=None, header="Authorization"):
    h = {}
    if key:
        h[header] = f"Bearer {key}" if header == "Authorization" else key
    for _ in range(50):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path, headers=h)
            r = c.getresponse()
            body = r.read().decode()
            c.close()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        except (ConnectionError, http.client.RemoteDisconnected):
            time.sleep(0.1)
    check(False, f"no answer from 127.0.0.1:{port}{path}")


def until_valid(port, path):
    t0 = time.time()
    while get(port, path, keys["valid"])[0] != 200:
        check(time.time() - t0 < 20, f"127.0.0.1:{port} never accepted a valid key")
        time.sleep(0.1)


def gateway_matrix(name, port, path, principal_via_body=True, deprecation=True):
    """The answers every gateway page promises, over HTTP."""
    until_valid(port, path)
    st, h, body = get(port, path, keys["valid"])
    check(st == 200 and "principal=billing-service" in body and "auth=-" in body,
          f"{name}: valid key → 200, principal upstream, no key upstream: {st} {body!r}")
    st, h, body = get(port, path, keys["valid"], header="X-API-Key")
    check(st == 200 and "principal=billing-service" in body, f"{name}: X-API-Key: {st} {body!r}")
    st, h, _ = get(port, path)
    check(st == 401, f"{name}: no key → 401: {st}")
    st, h, _ = get(port, path, keys["revoked"])
    check(st == 401, f"{name}: revoked → 401: {st}")
    st, h, _ = get(port, path, keys["noscope"])
    check(st == 403, f"{name}: wrong scope → 403: {st}")
    st, h, _ = get(port, path, keys["old"])
    check(st == 200, f"{name}: rotated-out key still works: {st}")
    if deprecation:
        check(re.fullmatch(r"@\d+", h.get("deprecation", "")) and h.get("sunset", "").endswith(" GMT"),
              f"{name}: Deprecation/Sunset on a rotated key: {h}")
    return h


recorder = conformance.Recorder()
Upstream = upstream_handler(lambda h: recorder(h) and (
    f"principal={h.get('x-keygate-principal') or '-'} "
    f"auth={'set' if h.get('authorization') or h.get('x-api-key') else '-'}\n").encode())


class Origin(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=pub, **kw)

    def log_message(self, *a):
        pass


NGINX_TEMPS = "".join(f"{t}_temp_path {work}/{t};" for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def nginx(name, conf):
    path = os.path.join(work, name + ".conf")
    with open(path, "w") as f:
        f.write(f"{conf}\npid {work}/{name}.pid;\nerror_log {work}/error.log info;\nevents {{ worker_connections 64; }}\n")
    p = start(name, ["nginx", "-p", work, "-c", path, "-g", "daemon off;"])
    return p


def with_listen(conf, port):
    """Adds a `listen` line to the first `server {` of a config fragment."""
    return re.sub(r"server \{", f"server {{\n        listen 127.0.0.1:{port};", conf, count=1)


def envoy(name, port, hcm, clusters, env=None):
    """Real Envoy with one listener whose http_connection_manager config is the
    documented block (indented into place; a route to `upstream` unless the
    block has its own route_config), with the named clusters."""
    if "route_config:" not in hcm:
        hcm = ('route_config:\n  virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"},'
               ' route: {cluster: upstream}}]}]\n') + hcm
    filters = "".join(" " * 10 + line + "\n" for line in hcm.splitlines())
    cl = "".join(f"""  - name: {n}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {n}
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {p}}}}}}}}}]}}]
""" for n, p in clusters.items())
    admin = free_port()
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as f:
        f.write(f"""admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
  - name: docs
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: docs
{filters}  clusters:
{cl}""")
    p = start(name, [ENVOY, "-c", path, "--concurrency", "1", "--base-id", str(admin), "--log-level", "warn"], env)
    wait_port(port, name, p)
    return p


# --- the fixture: a published keyset and an upstream ---------------------------

keys = Store(BIN, store).outcome_keys("acme_live", pub)
upstream = serve(Upstream).server_address[1]
backend = f"127.0.0.1:{upstream}"
SRV = [("/srv/keygate", pub), ("http://backend", f"http://{backend}")]

try:
    # -- nginx (native module): build, then its config as written --------------
    run_sh_block(take("integrations/nginx.md", 0, "sh", "run: apt packages present, build.sh"))
    module = os.path.join(ROOT, "bindings/nginx/build/ngx_http_keygate_module.so")
    conf = take("integrations/nginx.md", 1, "nginx", "loaded in real nginx, every answer over HTTP")
    # The state directory must be writable by nginx's worker user.
    state_dir = os.path.join(work, "nginx-state")
    os.makedirs(state_dir)
    os.chmod(state_dir, 0o777)
    for a, b in SRV + [("/path/to/ngx_http_keygate_module.so", module), ("/var/log/nginx", work),
                       ("/var/lib/keygate", state_dir)]:
        conf = conf.replace(a, b)
    gw = free_port()
    conf = with_listen(conf.replace("http {", "http {\n    " + NGINX_TEMPS, 1), gw)
    p = nginx("nginx-native", conf)
    wait_port(gw, "nginx (native module)", p)
    gateway_matrix("nginx.md", gw, "/invoices/2026")
    conformance.run(check, "nginx.md as written", gw, keys, recorder, base="/invoices/2026",
                    host_answers={"two authorization headers": "nginx refuses a repeated Authorization line itself"})
    st, _, body = get(gw, "/keygate/metrics")
    check(st == 200 and "keygate_" in body, f"nginx.md: metrics location: {st} {body[:200]!r}")
    log = open(os.path.join(work, "api.log")).read()
    check(os.path.exists(os.path.join(state_dir, "nginx.state")), "nginx.md: keygate_state written")
    check("billing-service" in log and " valid " in log, f"nginx.md: the keygate log format: {log[-300:]!r}")
    # (The conformance table sends one key in a URL on purpose; a URL is logged whole.)
    log = "\n".join(l for l in log.splitlines() if "?api_key=" not in l)
    check(all(k not in log for k in keys.values()), "nginx.md: no key in the access log")

    # -- the client guide, against that nginx -----------------------------------
    base = f"http://127.0.0.1:{gw}"
    real_key = keys["valid"]
    take("clients.md", 0, "", "the key's layout, checked against an issued key")
    check(re.fullmatch(r"acme_live_[0-9A-Za-z]{33}[0-9A-Za-z]{6}", real_key), f"key layout: {real_key}")
    out = run_sh_block(take("clients.md", 1, "sh", "curl against nginx"), [("https://api.example.com", base)],
                       env={"API_KEY": real_key})
    check(out.count("principal=billing-service") == 2, f"clients.md curl: both header forms accepted: {out!r}")
    example = take("clients.md", 2, "", "the header example, matched against a real response")
    h = get(gw, "/invoices/1", keys["old"])[1]
    dep_doc = re.search(r"Deprecation: (\S+)", example).group(1)
    sun_doc = re.search(r"Sunset: (.+? GMT)", example).group(1)
    for doc, real in [(dep_doc, h["deprecation"]), (sun_doc, h["sunset"])]:
        shape = re.sub(r"[0-9]", "9", re.sub(r"[A-Z][a-z]{2}", "Aaa", doc))
        check(shape == re.sub(r"[0-9]", "9", re.sub(r"[A-Z][a-z]{2}", "Aaa", real)),
              f"clients.md header example {doc!r} has the shape of the real {real!r}")

    py = take("clients.md", 3, "python", "run with requests against nginx")
    py_file = os.path.join(work, "client.py")
    with open(py_file, "w") as f:
        f.write(py + "\nimport sys\nlogging.basicConfig(stream=sys.stdout, format='%(levelname)s %(message)s')\n"
                "r = get(sys.argv[1])\nprint('STATUS', r.status_code, r.text.strip())\n")
    js = take("clients.md", 4, "js", "run with node's fetch against nginx")
    js_file = os.path.join(work, "client.js")
    with open(js_file, "w") as f:
        f.write(js + "\ncall(process.argv[2], JSON.parse(process.argv[3])).then(async (r) =>"
                " console.log('STATUS', r.status, (await r.text()).trim()));\n")
    cases = [  # (new key, old key) → expected status, principal, deprecation warning?
        (None, keys["old"], 200, "mobile-app", True),
        (keys["rotated"], keys["old"], 200, "mobile-app", False),
        (keys["revoked"], keys["valid"], 200, "billing-service", False),
        (keys["revoked"], keys["later"], 401, None, False),
    ]
    for new, old, status, principal, warned in cases:
        env = {**os.environ, "API_KEY": old}
        env.pop("API_KEY_NEW", None)
        if new:
            env["API_KEY_NEW"] = new
        for lang, argv in [("python", [VENV_PY, py_file, base + "/invoices/7"]),
                           ("js", ["node", js_file, base + "/invoices/7", json.dumps([new, old])])]:
            r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
            out = r.stdout + r.stderr
            want = f"STATUS {status}" + (f" principal={principal}" if principal else "")
            check(r.returncode == 0 and want in out, f"clients.md {lang}: {new and 'new+'}old → {want}: {out!r}")
            check(("deprecated" in out and "sunset" in out and "GMT" in out) == warned,
                  f"clients.md {lang}: deprecation warning {'expected' if warned else 'unexpected'}: {out!r}")

    # -- C: install, compile the example, run it --------------------------------
    prefix = os.path.join(work, "prefix")
    capp = os.path.join(work, "capp")
    os.makedirs(capp)
    example = take("integrations/c.md", 1, "c", "compiled with -Wall -Werror against the installed library and run")
    includes = "".join(line + "\n" for line in example.splitlines() if line.startswith("#include"))
    body = "".join(line + "\n" for line in example.splitlines() if not line.startswith("#include"))
    with open(os.path.join(capp, "app.c"), "w") as f:
        f.write(f"""{includes}#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define log(...) (fprintf(stderr, __VA_ARGS__), fputc('\\n', stderr))
static uint8_t *slurp(const char *path, size_t *len) {{
    FILE *f = fopen(path, "rb");
    if (!f) exit(2);
    static uint8_t buf[4][1 << 20];
    static int n;
    *len = fread(buf[n], 1, sizeof buf[n], f);
    fclose(f);
    return buf[n++];
}}
int main(int argc, char **argv) {{
    if (argc != 5) return 2;
    size_t trust_len, snap_len, kgr_len;
    uint8_t *trust = slurp(argv[1], &trust_len), *snap = slurp(argv[2], &snap_len), *kgr = slurp(argv[3], &kgr_len);
    const char *key = argv[4];
    size_t key_len = strlen(key);
{body}
    printf("%s %s\\n", keygate_outcome_name(d.outcome), d.principal);
    return 0;
}}
""")
    run_sh_block(take("integrations/c.md", 0, "sh", "install.sh into a prefix, cc with pkg-config"),
                 [("PREFIX=/usr/local bash bindings/c/install.sh", f"PREFIX={prefix} bash {ROOT}/bindings/c/install.sh"),
                  ("cc app.c", "cc -Wall -Werror app.c")],
                 cwd=capp, env={"PKG_CONFIG_PATH": os.path.join(prefix, "lib/pkgconfig")})
    for k, want in [("valid", "valid billing-service"), ("old", "valid_deprecated mobile-app"),
                    ("noscope", "insufficient_scope search-indexer"), ("revoked", "revoked")]:
        r = subprocess.run([os.path.join(capp, "a.out"), f"{pub}/trust.kgt", f"{pub}/snapshot.kgs",
                            f"{pub}/revocations.kgr", keys[k]], capture_output=True, text=True,
                           env={**os.environ, "LD_LIBRARY_PATH": os.path.join(prefix, "lib")})
        check(r.returncode == 0 and r.stdout.startswith(want), f"c.md example, {k}: {r.stdout!r} {r.stderr!r}")

    # -- OpenResty: the Lua module over the library installed above -------------
    conf = take("integrations/openresty.md", 0, "nginx", "loaded in real nginx with the Lua module")
    for a, b in SRV + [("/var/lib/keygate", state_dir), ("/path/to/bindings", os.path.join(ROOT, "bindings")),
                       ("/usr/local/lib/libkeygate.so", os.path.join(prefix, "lib/libkeygate.so"))]:
        conf = conf.replace(a, b)
    gw = free_port()
    p = nginx("nginx-lua", "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
              "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n"
              f"http {{\n{NGINX_TEMPS}\n{with_listen(conf, gw)}\n}}\n")
    wait_port(gw, "nginx (Lua)", p)
    gateway_matrix("openresty.md", gw, "/invoices/2026")
    conformance.run(check, "openresty.md as written", gw, keys, recorder, base="/invoices/2026",
                    host_answers={"two authorization headers": "nginx refuses a repeated Authorization line itself"})
    st, _, body = get(gw, "/keygate/metrics")
    check(st == 200 and "keygate_" in body, f"openresty.md: metrics: {st}")

    # -- forward auth: keygate serve, then nginx auth_request, Envoy ext_authz, Caddy
    fa = "integrations/forward-auth.md"
    serve_port = free_port()
    serve_cmd = take(fa, 0, "sh", "started as written, answers /healthz").strip()
    check(serve_cmd.startswith("keygate serve "), f"forward-auth.md: {serve_cmd}")
    metrics_port = free_port()
    pinned = os.path.join(work, "pinned-trust.kgt")
    shutil.copy(os.path.join(pub, "trust.kgt"), pinned)
    FA = [("8787", str(serve_port)), ("8788", str(metrics_port))]
    for a, b in FA + [("/srv/keygate", pub), ("/etc/keygate/trust.kgt", pinned), ("/var/lib/keygate", work)]:
        serve_cmd = serve_cmd.replace(a, b)
    p = start("serve", [BIN] + serve_cmd.split()[1:])
    wait_port(serve_port, "keygate serve", p)
    wait_port(metrics_port, "keygate serve metrics", p)
    check(get(metrics_port, "/healthz")[0] == 200, "forward-auth.md: /healthz on --metrics-listen")
    check(get(serve_port, "/healthz")[0] == 401, "forward-auth.md: no /healthz on the forward-auth listener")
    check(os.path.exists(os.path.join(work, "serve.state")), "forward-auth.md: --state written")

    conf = take(fa, 1, "nginx", "real nginx auth_request in front of keygate serve")
    for a, b in SRV + FA:
        conf = conf.replace(a, b)
    gw = free_port()
    p = nginx("nginx-authreq", f"http {{\n{NGINX_TEMPS}\n    server {{\n        listen 127.0.0.1:{gw};\n{conf}\n    }}\n}}\n")
    wait_port(gw, "nginx (auth_request)", p)
    # auth_request passes no headers of a 2xx subrequest to the client, so no Deprecation here.
    gateway_matrix("forward-auth.md auth_request", gw, "/api/invoices", deprecation=False)
    why = "nginx auth_request turns any subrequest status but 2xx/401/403 into 500 (serve answers 400)"
    conformance.run(check, "keygate serve behind nginx auth_request (forward-auth.md)", gw, keys, recorder,
                    skip={n: why for n in ("two different keys", "two x-api-key headers",
                                           "two authorization headers")}, base="/api/invoices")

    ext = take(fa, 2, "yaml", "real Envoy ext_authz in front of keygate serve")
    for a, b in FA:
        ext = ext.replace(a, b)
    gw = free_port()
    envoy("envoy-ext-authz", gw, ext, {"backend": upstream, "keygate": serve_port})
    gateway_matrix("forward-auth.md ext_authz", gw, "/invoices/3")
    conformance.run(check, "keygate serve behind Envoy ext_authz (forward-auth.md)", gw, keys, recorder,
                    base="/invoices/3")
    st, h, _ = get(gw, "/invoices/3", keys["revoked"])
    check('error="invalid_token"' in h.get("www-authenticate", ""), f"ext_authz passes keygate's challenge: {h}")

    caddy = take(fa, 3, "caddy", "real Caddy forward_auth in front of keygate serve")
    gw = free_port()
    for a, b in FA + [("api.example.com", f"http://127.0.0.1:{gw}"), ("backend:8080", backend)]:
        caddy = caddy.replace(a, b)
    caddyfile = os.path.join(work, "Caddyfile")
    with open(caddyfile, "w") as f:
        f.write("{\n    admin off\n}\n" + caddy)
    p = start("caddy", ["caddy", "run", "--config", caddyfile, "--adapter", "caddyfile"],
              env={"HOME": work, "XDG_DATA_HOME": work, "XDG_CONFIG_HOME": work})
    wait_port(gw, "caddy", p)
    h = gateway_matrix("forward-auth.md Caddy", gw, "/invoices/4", deprecation=False)

    # After the matrices above, the rotated-out key was used through this serve.
    out = run_sh_block(take(fa, 4, "sh", "run against keygate serve: the old key's uses come back"),
                       FA + [("keygate list", f"{BIN} list")], cwd=work, env={"KEYGATE_STORE": store})
    old_id = json.loads(Store(BIN, store).run("list", "--status", "deprecated"))[0]["key_id"]
    check(re.search(re.escape(old_id) + r".* \d{4}-\d\d-\d\dT.*\((\d+) uses\)", out),
          f"forward-auth.md: list --usage shows the old key's last use: {out!r}")

    # -- the issuer API: its own store, admin key, curl and Python as written ----
    ia = "integrations/issuer-api.md"
    api_store, api_pub = os.path.join(work, "api-store"), os.path.join(work, "api-pub")
    Store(BIN, api_store).run("init", "--keyset", "acme", "--prefix", "acme_live")
    IA = [("keygate ", BIN + " "), ("/var/lib/keygate/store", api_store), ("/srv/keygate", api_pub)]
    run_sh_block(take(ia, 0, "sh", "run: an admin key into dashboard.key, then --list"), IA, cwd=work)
    check(open(os.path.join(work, "dashboard.key")).read().startswith("kgadmin_"), "issuer-api.md: admin key written")
    api_port = free_port()
    api_cmd = take(ia, 1, "sh", "started as written (port substituted)").strip()
    for a_, b_ in IA + [("8790", str(api_port))]:
        api_cmd = api_cmd.replace(a_, b_)
    p = start("keygate-api", api_cmd.split())
    wait_port(api_port, "keygate api", p)
    out = run_sh_block(take(ia, 2, "sh", "curl: issue with an Idempotency-Key, twice"), [("8790", str(api_port))],
                       cwd=work)
    first = json.loads(out)
    again = json.loads(run_sh_block(take(ia, 2, "sh", "curl: issue with an Idempotency-Key, twice"),
                                    [("8790", str(api_port))], cwd=work))
    check(first["key"].startswith("acme_live_") and again == first,
          f"issuer-api.md curl: a retry returns the same key: {first} {again}")
    py = take(ia, 3, "python", "run with requests: new_key twice, a reused key refused, revoke published < 1 s")
    with open(os.path.join(work, "issuer_client.py"), "w") as f:
        f.write(py.replace("8790", str(api_port)) + """
import json, subprocess, sys, time
a, b = new_key("customer-9"), new_key("customer-9")
assert a == b and a["principal"] == "customer-9", (a, b)
try:
    call("POST", "/v1/keys", idempotency_key="new-key-customer-9", principal="someone-else")
    raise SystemExit("a reused Idempotency-Key was accepted")
except KeygateError as e:
    assert "idempotency-key-reused" in str(e), e
revoke(a["key_id"], "customer left")
t0 = time.time()
while True:
    out = subprocess.run([sys.argv[1], "--json", "verify", "--trust", sys.argv[2] + "/trust.kgt", "--snapshot",
                          sys.argv[2] + "/snapshot.kgs", "--revocations", sys.argv[2] + "/revocations.kgr",
                          a["key"]], capture_output=True, text=True).stdout
    if out and json.loads(out)["outcome"] == "revoked":
        break
    assert time.time() - t0 < 3, out
    time.sleep(0.05)
print("REVOKED_AFTER_MS", int(1000 * (time.time() - t0)))
""")
    r = subprocess.run([VENV_PY, "issuer_client.py", BIN, api_pub], cwd=work, capture_output=True, text=True)
    check(r.returncode == 0 and "REVOKED_AFTER_MS" in r.stdout,
          f"issuer-api.md python: {r.stdout[-1500:]} {r.stderr[-1500:]}")

    # -- the issuer API on PostgreSQL: the block as written, two instances -------
    pg_block = take(ia, 4, "sh", "run on a throw-away PostgreSQL: init, an admin key, two API instances; "
                                 "an issue through one is listed through the other")
    if os.environ.get("KEYGATE_TEST_PG"):
        base = os.environ["KEYGATE_TEST_PG"]
        db = f"docs_{os.getpid()}"
        subprocess.run(["psql", "-q", base, "-c", f"CREATE DATABASE {db}"], check=True, capture_output=True)
        url = base.rsplit("/", 1)[0] + "/" + db
        seal, pg_pub = os.path.join(work, "pg-seal.key"), os.path.join(work, "pg-pub")
        subs = [("postgres://keygate@db.internal:5432/keygate", url), ("/etc/keygate/seal.key", seal),
                ("keygate ", BIN + " "), ("/srv/keygate", pg_pub), ("dashboard.key", "pg-dashboard.key")]
        *setup, api_line = pg_block.strip().splitlines()
        # `export` lines set the environment of the lines after them.
        env = {}
        for line in setup:
            for a, b in subs:
                line = line.replace(a, b)
            if line.startswith("export "):
                env.update(kv.split("=", 1) for kv in line[len("export "):].split())
            else:
                r = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=work, capture_output=True,
                                   text=True, env={**os.environ, **env})
                check(r.returncode == 0, f"issuer-api.md PostgreSQL: {line}: {r.stderr}")
        check(os.stat(seal).st_mode & 0o777 == 0o600, "issuer-api.md PostgreSQL: init made the seal key 0600")
        pg_admin = open(os.path.join(work, "pg-dashboard.key")).read().strip()
        pg_ports = []
        for n in range(2):
            port = free_port()
            cmd = api_line
            for a, b in subs + [("8790", str(port))]:
                cmd = cmd.replace(a, b)
            p = start(f"keygate-api-pg{n}", cmd.split(), env=env)
            wait_port(port, f"keygate api on PostgreSQL #{n}", p)
            pg_ports.append(port)

        def pg_call(port, method, path, body=None):
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=json.dumps(body).encode() if body else None,
                                         headers={"Authorization": f"Bearer {pg_admin}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        made = pg_call(pg_ports[0], "POST", "/v1/keys", {"principal": "customer-pg"})
        seen = pg_call(pg_ports[1], "GET", f"/v1/keys/{made['key_id']}")
        check(seen["principal"] == "customer-pg", f"issuer-api.md PostgreSQL: issued on one, read on the other: {seen}")
        t0 = time.time()
        while not os.path.exists(os.path.join(pg_pub, "snapshot.kgs")):
            check(time.time() - t0 < 10, "issuer-api.md PostgreSQL: one instance published")
            time.sleep(0.1)
    else:
        print("SKIPPED: issuer-api.md's PostgreSQL block: no KEYGATE_TEST_PG "
              "(CI runs the docs test under scripts/with-postgres.sh)")

    # -- Envoy, native module: build as written, then its config -----------------
    run_sh_block(take("integrations/envoy.md", 0, "sh", "run: build.sh"))
    module_dir = os.path.join(ROOT, "bindings/envoy-native/build")
    check(os.path.exists(os.path.join(module_dir, "libkeygate_envoy.so")), "envoy.md: libkeygate_envoy.so built")
    filt = take("integrations/envoy.md", 1, "yaml", "real Envoy 1.40 with the native module, every answer over HTTP")
    anchor_path = os.path.join(work, "pinned-trust.kgt")
    shutil.copy(os.path.join(pub, "trust.kgt"), anchor_path)
    origin_port = serve(Origin).server_address[1]
    for a, b in [("/etc/keygate/trust.kgt", anchor_path),
                 ("https://keys.example.com/acme/", f"http://127.0.0.1:{origin_port}/")]:
        check(a in filt, f"envoy.md: the native config names {a}")
        filt = filt.replace(a, b)
    gw = free_port()
    envoy("envoy-native", gw, filt, {"upstream": upstream}, env={"ENVOY_DYNAMIC_MODULES_SEARCH_PATH": module_dir})
    gateway_matrix("envoy.md (native)", gw, "/invoices/5")
    conformance.run(check, "envoy.md native as written", gw, keys, recorder, base="/invoices/5")

    # -- Envoy, proxy-wasm: build the filter as written, then its config --------
    run_sh_block(take("integrations/envoy.md", 2, "sh", "run: rustup target, cargo build"))
    wasm = os.path.join(TARGET, "wasm32-wasip1/release/keygate_envoy.wasm")
    check(os.path.exists(wasm), f"envoy.md: {wasm} built")
    filt = take("integrations/envoy.md", 3, "yaml", "real Envoy 1.40 with the filter, every answer over HTTP")
    filt = filt.replace("/etc/envoy/keygate_envoy.wasm", wasm)
    anchor = base64.b64encode(open(os.path.join(pub, "trust.kgt"), "rb").read()).decode()
    check("<base64 -w0 trust.kgt>" in filt, "envoy.md: the config pins trust_anchor")
    filt = filt.replace("<base64 -w0 trust.kgt>", anchor)
    gw = free_port()
    envoy("envoy-wasm", gw, filt, {"upstream": upstream, "keygate_origin": serve(Origin).server_address[1]})
    gateway_matrix("envoy.md", gw, "/invoices/5")
    conformance.run(check, "envoy.md as written", gw, keys, recorder, base="/invoices/5")

    # -- Workers / Node: the build command, then the package it documents -------
    run_sh_block(take("integrations/workers.md", 0, "sh", "run: build.sh; then require() the Node package"))
    r = subprocess.run(["node", "-e", """
const fs = require("fs");
const { Verifier } = require("./bindings/wasm/pkg/node");
const [pub, key] = process.argv.slice(1);
const v = new Verifier(fs.readFileSync(pub + "/trust.kgt"));
v.loadSnapshot(fs.readFileSync(pub + "/snapshot.kgs"));
const r = v.verify(key, { scope: "invoices:read" });
console.log(r.outcome, r.principal);""", pub, keys["valid"]], cwd=ROOT, capture_output=True, text=True)
    check(r.stdout.strip() == "valid billing-service", f"workers.md: require(pkg/node): {r.stdout!r} {r.stderr!r}")

    # -- Rust: the dependency line is the reader's; the example is a doctest ----
    # -- axum (keygate-tower): the example as written, run against the fixture --
    take("integrations/axum.md", 0, "toml", "the dependency line (the reader's repository URL)")
    example = take("integrations/axum.md", 1, "rust", "is bindings/tower/examples/axum.rs, built and run below")
    check(example.strip() == open(os.path.join(ROOT, "bindings/tower/examples/axum.rs")).read().strip(),
          "axum.md's example is bindings/tower/examples/axum.rs, word for word")
    cmd = take("integrations/axum.md", 2, "sh", "run: the example serves the fixture; every answer over HTTP")
    r = subprocess.run(["cargo", "build", "--release", "-q", "-p", "keygate-tower", "--example", "axum"],
                       cwd=ROOT, capture_output=True, text=True)
    check(r.returncode == 0, f"axum.md: the example builds: {r.stderr[-2000:]}")
    gw = free_port()
    cmd = cmd.replace("/srv/keygate", pub).replace("127.0.0.1:3000", f"127.0.0.1:{gw}").strip()
    p = start("axum-example", ["bash", "-c", "exec " + cmd], env={"CARGO_TARGET_DIR": TARGET})
    wait_port(gw, "axum.md example", p)
    gateway_matrix("axum.md", gw, "/invoices/5")
    st, _, body = get(gw, "/metrics")
    check(st == 200 and 'keygate_verify_total{outcome="valid"}' in body, f"axum.md: /metrics: {st} {body[:200]!r}")

    # -- Python: the wheel as written, the library, the FastAPI app served by
    #    uvicorn as written, the ASGI middleware in front of a Starlette app --
    run_sh_block(take("integrations/python.md", 0, "sh", "run: build.sh (the wheel into .venv)"))
    snippet = take("integrations/python.md", 1, "python", "run with the fixture's directory and key: prints valid")
    r = subprocess.run([VENV_PY, "-c", snippet.replace("/srv/keygate", pub).replace("acme_live_…", keys["valid"])],
                       capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.strip() == "valid", f"python.md: the library: {r.stdout} {r.stderr}")
    pydir = os.path.join(work, "python-docs")
    os.makedirs(pydir)
    open(os.path.join(pydir, "invoices.py"), "w").write(
        take("integrations/python.md", 2, "python", "saved as invoices.py, served by the next block"))
    run_block = take("integrations/python.md", 3, "sh", "run: uvicorn as written, then the curl line: 200")
    serve_line, curl_line = [line for line in run_block.splitlines() if line.strip()]
    gw = free_port()
    venv_bin = os.path.dirname(VENV_PY)
    pyenv = {"PATH": venv_bin + os.pathsep + os.environ["PATH"], "KEY": keys["valid"]}
    serve_line = serve_line.replace("/srv/keygate", pub).replace("--port 8000", f"--port {gw}")
    p = start("python-docs-uvicorn", ["bash", "-c", "cd " + pydir + " && " + serve_line], env=pyenv)
    wait_port(gw, "python.md uvicorn", p)
    r = subprocess.run(["bash", "-c", curl_line.replace("127.0.0.1:8000", f"127.0.0.1:{gw}")],
                       capture_output=True, text=True, env={**os.environ, **pyenv})
    check('"principal":"billing-service"' in r.stdout, f"python.md: curl through the FastAPI app: {r.stdout}")
    st, h, _ = get(gw, "/invoices/5")
    check(st == 401 and h.get("www-authenticate") == 'Bearer realm="keygate"', f"python.md: no key: {st} {h}")
    st, h, _ = get(gw, "/invoices/5", keys["noscope"])
    check(st == 403, f"python.md: wrong scope: {st}")
    st, h, _ = get(gw, "/invoices/5", keys["old"])
    check(st == 200 and h.get("deprecation", "").startswith("@"), f"python.md: rotated key: {st} {h}")
    middleware = take("integrations/python.md", 4, "python", "wraps a Starlette app, served by uvicorn: every answer")
    open(os.path.join(pydir, "wrapped.py"), "w").write(f"""
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from keygate import Verifier

verifier = Verifier.from_dir({pub!r})


async def invoice(request):
    auth = "set" if "authorization" in request.headers or "x-api-key" in request.headers else "-"
    return PlainTextResponse(f"principal={{request.headers.get('x-keygate-principal', '-')}} auth={{auth}}\\n")

app = Starlette(routes=[Route("/invoices/{{id}}", invoice)])
""" + middleware)
    gw = free_port()
    p = start("python-docs-asgi", [VENV_PY, "-m", "uvicorn", "wrapped:app", "--host", "127.0.0.1", "--port", str(gw),
                                   "--app-dir", pydir])
    wait_port(gw, "python.md middleware", p)
    gateway_matrix("python.md (ASGI middleware)", gw, "/invoices/5")

    # -- Node: the Express example as written, on the built package ------------
    nodedir = os.path.join(work, "node-docs")
    os.makedirs(os.path.join(nodedir, "node_modules"))
    os.symlink(os.path.join(ROOT, "bindings/wasm/pkg/node"), os.path.join(nodedir, "node_modules/keygate"))
    os.symlink(os.path.join(ROOT, "bindings/wasm/node_modules/express"), os.path.join(nodedir, "node_modules/express"))
    open(os.path.join(nodedir, "server.js"), "w").write(
        take("integrations/node.md", 0, "js", "saved as server.js, run by the next block: every answer over HTTP"))
    run_line = take("integrations/node.md", 1, "sh", "run: node server.js with the fixture and a free port").strip()
    gw = free_port()
    run_line = run_line.replace("PORT=3000", f"PORT={gw}").replace("/srv/keygate", pub)
    p = start("node-docs", ["bash", "-c", f"cd {nodedir} && {run_line}"])
    wait_port(gw, "node.md example", p)
    gateway_matrix("node.md (Express)", gw, "/invoices/5")
    st, _, body = get(gw, "/metrics")
    check(st == 200 and 'keygate_verify_total{outcome="valid"}' in body, f"node.md: /metrics: {st}")

    # -- Node: the Hono Worker is the app hono-workerd.test.js runs in workerd --
    worker = open(os.path.join(ROOT, "bindings/wasm/tests/hono-worker/worker.js")).read()
    worker = worker[worker.index("import { Hono }"):]
    check(take("integrations/node.md", 2, "js", "the same as tests/hono-worker/worker.js, which "
               "tests/hono-workerd.test.js bundles and runs in workerd") == worker,
          "integrations/node.md: the Hono Worker differs from bindings/wasm/tests/hono-worker/worker.js")

    take("integrations/rust.md", 0, "toml", "the dependency line (the reader's repository URL)")
    take("integrations/rust.md", 1, "rust", "compiled by `cargo test --doc` (src/lib.rs includes the page)")
    lib = open(os.path.join(ROOT, "src/lib.rs")).read()
    check('include_str!("../docs/integrations/rust.md")' in lib, "src/lib.rs includes rust.md as a doctest")

    # -- the contract page shows tests/vectors/contract.json, row for row -------
    table = subprocess.run([sys.executable, os.path.join(ROOT, "tests/vectors/contract_table.py")],
                           capture_output=True, text=True, check=True).stdout.strip()
    page = open(os.path.join(ROOT, "docs/integrations/contract.md")).read()
    check(table in page, "integrations/contract.md: the table differs from tests/vectors/contract.json "
          "(paste python3 tests/vectors/contract_table.py)")

    missed = sorted(set(ALL) - set(taken))
    check(not missed, "blocks no test takes (add them to docs/tests/test_docs.py): " +
          ", ".join(f"docs/{p} #{i} ({ALL[(p, i)][0] or 'text'})" for p, i in missed))
    for (page, i), how in sorted(taken.items()):
        print(f"  docs/{page} #{i}: {how}")
    print(f"docs: {len(taken)} blocks on {len(PAGES)} pages, {check.count} checks passed")
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
