-- resty.keygate: API-key verification for OpenResty, Kong and APISIX, via
-- LuaJIT FFI over libkeygate. One verifier per worker per artifact set,
-- reloaded on a timer; same verdicts and HTTP answers as the nginx module.
--
--   init_worker_by_lua_block {
--     require("resty.keygate").init({ lib = "/usr/local/lib/libkeygate.so",
--       trust = "/srv/keygate/trust.kgt", snapshot = "/srv/keygate/snapshot.kgs",
--       revocations = "/srv/keygate/revocations.kgr", interval = 1 })
--   }
--   access_by_lua_block { require("resty.keygate").access({ scope = "invoices:read" }) }
--   header_filter_by_lua_block { require("resty.keygate").header_filter() }
local ffi = require("ffi")

ffi.cdef [[
typedef struct keygate_verifier keygate_verifier;
typedef struct keygate_verdict {
  int outcome; uint8_t key_id[16]; char principal[128]; size_t principal_len;
  uint64_t expires_at, deprecated_at, sunset_at, snapshot_version, revocation_seq; bool stale;
} keygate_verdict;
int keygate_verifier_new(const uint8_t *trust, size_t trust_len, keygate_verifier **out);
void keygate_verifier_free(keygate_verifier *verifier);
int keygate_verifier_load_snapshot(keygate_verifier *v, const uint8_t *bytes, size_t len);
int keygate_verifier_load_revocations(keygate_verifier *v, const uint8_t *bytes, size_t len);
int keygate_verifier_load_trust(keygate_verifier *v, const uint8_t *bytes, size_t len);
int keygate_verifier_verify(const keygate_verifier *v, const char *key, size_t key_len,
  const char *scope, size_t scope_len, uint64_t now_unix, keygate_verdict *out);
int keygate_verifier_stats_prometheus_size(const keygate_verifier *v, size_t *out_size);
int keygate_verifier_stats_prometheus(const keygate_verifier *v, char *buf, size_t buf_len, size_t *out_len);
const char *keygate_result_message(int result);
const char *keygate_outcome_name(int outcome);
const char *keygate_version(void);
]]

local _M = { _VERSION = "0.1.0" }
local OUTCOMES = { [0] = "valid", "valid_deprecated", "revoked", "expired", "not_yet_valid", "unknown",
  "malformed", "insufficient_scope", "stale" }

local lib, verifier, conf
local seen = {}        -- path -> "mtime:size" of the last file loaded
local verdict = ffi.new("keygate_verdict")

local function slurp(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read("*a")
  f:close()
  return data
end

-- Loads a file if it changed since the last look; a refused artifact is
-- logged at error and the current state is kept.
local function load(path, fn, what)
  if not path then return end
  local f = io.open(path, "rb")
  if not f then
    ngx.log(ngx.ERR, "keygate: cannot open ", path)
    return
  end
  local size = f:seek("end")
  f:close()
  local data = slurp(path)
  local stamp = tostring(size) .. ":" .. ngx.crc32_short(data or "")
  if seen[path] == stamp then return end
  local rc = lib[fn](verifier, data, #data)
  seen[path] = stamp
  if rc ~= 0 then
    ngx.log(ngx.ERR, "keygate: ", what, " ", path, " refused: ", ffi.string(lib.keygate_result_message(rc)))
  end
end

local function reload(premature)
  if premature then return end
  load(conf.trust, "keygate_verifier_load_trust", "trust")
  load(conf.snapshot, "keygate_verifier_load_snapshot", "snapshot")
  load(conf.revocations, "keygate_verifier_load_revocations", "revocations")
end

--- Creates this worker's verifier and starts the reload timer.
function _M.init(opts)
  conf = opts
  lib = ffi.load(opts.lib or "keygate")
  local trust, err = slurp(opts.trust)
  if not trust then
    ngx.log(ngx.ERR, "keygate: trust ", opts.trust, ": ", err)
    return
  end
  local out = ffi.new("keygate_verifier*[1]")
  local rc = lib.keygate_verifier_new(trust, #trust, out)
  if rc ~= 0 then
    ngx.log(ngx.ERR, "keygate: trust refused: ", ffi.string(lib.keygate_result_message(rc)))
    return
  end
  verifier = ffi.gc(out[0], lib.keygate_verifier_free)
  seen[opts.trust] = nil
  reload(false)
  ngx.timer.every(opts.interval or 1, reload)
end

local function presented_key()
  local auth = ngx.var.http_authorization
  if auth then
    local k = auth:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s+(.-)%s*$")
    if k and #k > 0 then return k end
  end
  local k = ngx.var.http_x_api_key
  if k and #k > 0 then return k end
end

local function challenge(status, realm, err, desc)
  local c = 'Bearer realm="' .. realm .. '"'
  if err then c = c .. ', error="' .. err .. '", error_description="' .. desc .. '"' end
  ngx.header["WWW-Authenticate"] = c
  return ngx.exit(status)
end

--- The access-phase check. opts: { scope = "...", realm = "keygate",
--- principal_header = "X-Keygate-Principal" }.
function _M.access(opts)
  opts = opts or {}
  local realm = opts.realm or "keygate"
  local key = presented_key()
  if not key then return challenge(401, realm) end
  if not verifier then return ngx.exit(503) end
  local scope = opts.scope
  local rc = lib.keygate_verifier_verify(verifier, key, #key, scope, scope and #scope or 0, 0, verdict)
  if rc ~= 0 then return ngx.exit(500) end
  local outcome = OUTCOMES[verdict.outcome]
  ngx.ctx.keygate = {
    outcome = outcome,
    principal = ffi.string(verdict.principal),
    deprecated_at = tonumber(verdict.deprecated_at),
    sunset_at = tonumber(verdict.sunset_at),
  }
  if outcome == "valid" or outcome == "valid_deprecated" then
    ngx.req.set_header(opts.principal_header or "X-Keygate-Principal", ngx.ctx.keygate.principal)
    ngx.req.clear_header("Authorization")
    ngx.req.clear_header("X-API-Key")
    return
  elseif outcome == "insufficient_scope" then
    return challenge(403, realm, "insufficient_scope", "the key lacks the required scope")
  elseif outcome == "stale" then
    return ngx.exit(503)
  end
  return challenge(401, realm, "invalid_token", outcome)
end

--- Adds Deprecation/Sunset to responses for rotated keys.
function _M.header_filter()
  local kg = ngx.ctx.keygate
  if kg and kg.outcome == "valid_deprecated" then
    ngx.header["Deprecation"] = "@" .. kg.deprecated_at
    if kg.sunset_at > 0 then ngx.header["Sunset"] = ngx.http_time(kg.sunset_at) end
  end
end

--- Prometheus text of this worker's counters.
function _M.metrics()
  if not verifier then return ngx.exit(503) end
  local size = ffi.new("size_t[1]")
  lib.keygate_verifier_stats_prometheus_size(verifier, size)
  local buf = ffi.new("char[?]", size[0])
  local len = ffi.new("size_t[1]")
  if lib.keygate_verifier_stats_prometheus(verifier, buf, size[0], len) ~= 0 then return ngx.exit(500) end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(ffi.string(buf, len[0]))
end

return _M
