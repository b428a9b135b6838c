#!/usr/bin/env bash
# wrk against one nginx worker on loopback, in the same run: no auth, the
# native module, the Lua module, and auth_request → keygate serve.
#   bash bindings/nginx/bench/run.sh [SECONDS]     (after bindings/nginx/build.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD
ROOT=$(cd ../.. && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
secs=${1:-5}
(cd "$ROOT" && cargo build --release -q -p keygate-cli -p keygate-c)
KG="$TARGET/release/keygate"
work=$(mktemp -d)
chmod 755 "$work"
cleanup() { [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; kill "${serve_pid:-0}" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$KG" --store "$work/store" init --keyset bench --prefix bench_live >/dev/null
"$KG" --store "$work/store" issue --principal bench --scope api:read --count 10000 --keys-out "$work/keys.txt" >/dev/null
"$KG" --store "$work/store" publish --out "$work/pub" >/dev/null
key=$(sed -n 1234p "$work/keys.txt")
port=$((20000 + RANDOM % 20000)); up=$((port + 1)); sp=$((port + 2))
cp "$work/pub/trust.kgt" "$work/pinned.kgt"   # the anchor serve pins; nginx sets the scope header
"$KG" serve --listen "127.0.0.1:$sp" --trust "$work/pinned.kgt" --artifacts-dir "$work/pub" \
    --trust-scope-header --threads 2 2>/dev/null &
serve_pid=$!
cat > "$work/nginx.conf" <<CONF
load_module $HERE/build/ngx_http_keygate_module.so;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
error_log $work/error.log;
pid $work/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/body; proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
    keygate_trust $work/pub/trust.kgt; keygate_snapshot $work/pub/snapshot.kgs;
    keygate_revocations $work/pub/revocations.kgr;
    lua_package_path "$HERE/lua/lib/?.lua;;";
    init_worker_by_lua_block {
        require("resty.keygate").init({ lib = "$TARGET/release/libkeygate_c.so", trust = "$work/pub/trust.kgt",
            snapshot = "$work/pub/snapshot.kgs", revocations = "$work/pub/revocations.kgr" })
    }
    upstream backend { server 127.0.0.1:$up; keepalive 32; }
    upstream kgserve { server 127.0.0.1:$sp; keepalive 32; }
    server { listen 127.0.0.1:$up; location / { return 200 "ok\n"; } }
    server {
        listen 127.0.0.1:$port;
        proxy_http_version 1.1; proxy_set_header Connection "";
        location /noauth { proxy_pass http://backend; }
        location /native { keygate on; keygate_scope api:read; proxy_pass http://backend; }
        location /lua { access_by_lua_block { require("resty.keygate").access({ scope = "api:read" }) } proxy_pass http://backend; }
        location /authreq { auth_request /_kg; proxy_pass http://backend; }
        location = /_kg { internal; proxy_pass http://kgserve; proxy_pass_request_body off;
            proxy_set_header Content-Length ""; proxy_set_header X-Keygate-Scope api:read; }
    }
}
CONF
nginx -p "$work" -c "$work/nginx.conf"
sleep 1
declare -A rps
for v in noauth native lua authreq; do
    curl -sf -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$port/$v" || { echo "bench: /$v does not answer 200" >&2; exit 1; }
    rps[$v]=$(wrk -t1 -c16 -d"${secs}s" -H "Authorization: Bearer $key" "http://127.0.0.1:$port/$v" | awk '/Requests\/sec/ {print $2}')
done
for v in noauth native lua authreq; do echo "nginx 1 worker, /$v: ${rps[$v]} req/s"; done
awk -v n="${rps[native]}" -v a="${rps[noauth]}" -v l="${rps[lua]}" -v r="${rps[authreq]}" 'BEGIN {
    printf "native / no-auth: %.3fx (target >= 0.95)\n", n / a
    printf "native / auth_request: %.2fx (target >= 3)\n", n / r
    printf "lua / no-auth: %.3fx\n", l / a }'
