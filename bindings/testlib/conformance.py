"""Runs the gateway contract's table (tests/vectors/contract.json) through one
real gateway and checks what the client and the upstream received.

    rec = Recorder(); upstream = serve(upstream_handler(rec))
    ... start the gateway in front of that upstream ...
    run(check, "envoy proxy-wasm", port, keys, rec)

`keys` maps roles to keys (gateway.Store.outcome_keys). A surface that
disagrees with the table fails `check` with the vector's name.

From another language's test (the Worker's, in Node), as a command whose
upstream records elsewhere and answers GET RECORDER_URL<id> with a JSON list
of [name, value] (404: nothing received):
    python3 conformance.py WHERE GATEWAY_PORT KEYS_JSON RECORDER_URL"""
import http.client
import json
import os
import threading

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/vectors/contract.json")


class Recorder:
    """The upstream's side: every header line it received (name lower-cased,
    value as Latin-1 text), per `x-conformance-id`. Use as the `answer` of
    gateway.upstream_handler."""

    def __init__(self):
        self.got, self.lock = {}, threading.Lock()

    def take(self, rid):
        with self.lock:
            return self.got.pop(rid, None)

    def __call__(self, headers):
        rid = headers.get("x-conformance-id")
        if rid:
            with self.lock:
                self.got[rid] = [(k.lower(), v) for k, v in headers.items()]
        return b"ok\n"


def vectors():
    return json.load(open(TABLE))["vectors"]


def fill(text, keys):
    for role, key in keys.items():
        text = text.replace("{" + role + "}", key)
    return text


def send(port, path, headers, rid):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest("GET", path, skip_accept_encoding=True)
    c.putheader("x-conformance-id", rid)
    for name, value in headers:
        c.putheader(name, value.encode("latin-1"))
    c.endheaders()
    r = c.getresponse()
    r.read()
    c.close()
    got = {}
    for k, v in r.getheaders():
        got.setdefault(k.lower(), []).append(v)
    return r.status, got


def expect(check, where, name, header, want, got):
    values = got.get(header, [])
    if want is None:
        check(not values, f"{where}: {name}: {header} should be absent, got {values}")
    elif want == "*":
        check(bool(values), f"{where}: {name}: {header} missing")
    else:
        check(values == [want], f"{where}: {name}: {header}: want [{want!r}], got {values!r}")


def run(check, where, port, keys, recorder, skip=(), host_answers=(), base="/conformance"):
    """Every vector through the gateway on `port`; `skip` names vectors this
    host cannot carry, `host_answers` those the host itself answers before
    keygate sees them (their status is still checked, their response headers
    not) — both printed with the reason, so nothing is silent. Requests go to
    `base` (a path the gateway guards). Returns the count."""
    done = 0
    for i, v in enumerate(vectors()):
        if v["name"] in skip:
            print(f"conformance ({where}): SKIPPED {v['name']!r}: {skip[v['name']]}")
            continue
        rid = f"{os.getpid()}-{i}"
        headers = [(n, fill(val, keys)) for n, val in v["headers"]]
        path = base + fill(v.get("path", "/conformance"), keys)[len("/conformance"):]
        status, got = send(port, path, headers, rid)
        check(status == v["status"], f"{where}: {v['name']}: status {status}, want {v['status']}")
        if v["name"] in host_answers:
            print(f"conformance ({where}): {v['name']!r}: status only: {host_answers[v['name']]}")
        else:
            for h, want in v.get("response", {}).items():
                expect(check, where, v["name"], h, want, got)
        up = recorder.take(rid)
        if status == 200:
            check(up is not None, f"{where}: {v['name']}: answered 200 but the upstream got nothing")
            seen = {}
            for k, val in up:
                seen.setdefault(k, []).append(val)
            for h, want in v.get("upstream", {}).items():
                expect(check, where + " upstream", v["name"], h, want, seen)
            for role, key in keys.items():
                check(all(key not in val for _, val in up),
                      f"{where}: {v['name']}: the {role} key reached the upstream")
        else:
            check(up is None, f"{where}: {v['name']}: refused with {status} but reached the upstream")
        done += 1
    print(f"conformance ({where}): {done} vectors passed")
    return done


class RemoteRecorder:
    """A recorder in another process, asked over HTTP."""

    def __init__(self, url):
        self.url = url

    def take(self, rid):
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(self.url + rid, timeout=10) as r:
                return [tuple(p) for p in json.load(r)]
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


if __name__ == "__main__":
    import sys
    where, port, keys_file, url = sys.argv[1:5]

    def check(cond, msg):
        if not cond:
            print("FAIL:", msg)
            raise SystemExit(1)

    run(check, where, int(port), json.load(open(keys_file)), RemoteRecorder(url))
