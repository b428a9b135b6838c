-- resty.keygate: API-key verification for OpenResty, Kong and APISIX, via
-- LuaJIT FFI over libkeygate. One verifier per worker per artifact set,
-- reloaded on a timer. The answer is the core's gateway contract
-- (keygate_verifier_check), exactly as the nginx module applies it.
--
--   init_worker_by_lua_block {
--     require("resty.keygate").init({ lib = "/usr/local/lib/libkeygate.so",
--       trust = "/srv/keygate/trust.kgt", snapshot = "/srv/keygate/snapshot.kgs",
--       revocations = "/srv/keygate/revocations.kgr", interval = 1,
--       state = "/var/lib/keygate/nginx.state",
--       stats_dict = "keygate_stats" })     -- lua_shared_dict keygate_stats 1m;
--   }
--   access_by_lua_block { require("resty.keygate").access({ scope = "invoices:read" }) }
--   header_filter_by_lua_block { require("resty.keygate").header_filter() }
local ffi = require("ffi")

ffi.cdef [[
typedef struct keygate_verifier keygate_verifier;
typedef struct keygate_policy keygate_policy;
typedef struct keygate_verdict {
  int outcome; uint8_t key_id[16]; char principal[129]; size_t principal_len;
  uint64_t expires_at, deprecated_at, sunset_at, snapshot_version, revocation_seq; bool stale;
} keygate_verdict;
typedef struct keygate_header { const uint8_t *name; size_t name_len; const uint8_t *value; size_t value_len; } keygate_header;
typedef struct keygate_response_header { const char *name; char value[385]; size_t value_len; } keygate_response_header;
typedef struct keygate_answer {
  uint16_t status; bool forward; bool verified; keygate_verdict verdict; const char *body;
  size_t response_headers_len; keygate_response_header response_headers[2];
  char principal_value[385]; size_t principal_value_len;
} keygate_answer;
int keygate_verifier_new(const uint8_t *trust, size_t trust_len, keygate_verifier **out);
void keygate_verifier_free(keygate_verifier *verifier);
int keygate_verifier_load_snapshot(keygate_verifier *v, const uint8_t *bytes, size_t len);
int keygate_verifier_load_revocations(keygate_verifier *v, const uint8_t *bytes, size_t len);
int keygate_verifier_load_trust(keygate_verifier *v, const uint8_t *bytes, size_t len);
int keygate_verifier_verify(const keygate_verifier *v, const char *key, size_t key_len,
  const char *scope, size_t scope_len, uint64_t now_unix, keygate_verdict *out);
int keygate_policy_new(const char *realm, size_t realm_len, const char *principal_header,
  size_t principal_header_len, uint32_t retry_after, keygate_policy **out);
void keygate_policy_free(keygate_policy *policy);
bool keygate_policy_strips(const keygate_policy *policy, const uint8_t *name, size_t name_len,
  const uint8_t *value, size_t value_len);
int keygate_verifier_check(const keygate_verifier *v, const keygate_header *headers, size_t headers_len,
  const char *scope, size_t scope_len, uint64_t now_unix, const keygate_policy *policy, keygate_answer *out);
int keygate_verifier_state(const keygate_verifier *v, char *buf, size_t buf_len, size_t *out_len);
int keygate_file_stamp(const char *path, size_t path_len, char *buf, size_t buf_len, size_t *out_len);
int keygate_verifier_restore_state(keygate_verifier *v, const uint8_t *text, size_t len);
int keygate_verifier_stats_prometheus_size(const keygate_verifier *v, size_t *out_size);
int keygate_verifier_stats_text(const keygate_verifier *v, char *buf, size_t buf_len, size_t *out_len);
int keygate_stats_merge_prometheus(const uint8_t *texts, size_t texts_len, char *buf, size_t buf_len, size_t *out_len);
int keygate_verifier_stats_prometheus(const keygate_verifier *v, char *buf, size_t buf_len, size_t *out_len);
const char *keygate_result_message(uint32_t result);
const char *keygate_outcome_name(uint32_t outcome);
const char *keygate_version(void);
]]

local _M = { _VERSION = "0.2.0" }

local lib, verifier, conf
local seen = {}        -- path -> the core's file stamp of the last file installed
local policies = {}    -- realm \0 principal header \0 retry-after -> keygate_policy
local answer = ffi.new("keygate_answer")
local STATE_MAX = 256
local STAMP_MAX = 128
local stamp_buf, stamp_len = ffi.new("char[?]", STAMP_MAX), ffi.new("size_t[1]")
local STATS_TEXT = 12288
local STATS_STALE = 10          -- seconds: a worker that stopped publishing is gone

local function slurp(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local data = f:read("*a")
  f:close()
  return data
end

local function message(rc)
  return ffi.string(lib.keygate_result_message(rc))
end

-- Writes the high-water marks atomically (temp file per worker, rename).
local function save_state()
  if not conf.state then return end
  local buf, len = ffi.new("char[?]", STATE_MAX), ffi.new("size_t[1]")
  if lib.keygate_verifier_state(verifier, buf, STATE_MAX, len) ~= 0 then return end
  local tmp = conf.state .. "." .. ngx.worker.pid() .. ".tmp"
  local f = io.open(tmp, "wb")
  if not f then
    ngx.log(ngx.ERR, "keygate: state ", conf.state, " not saved")
    return
  end
  f:write(ffi.string(buf, len[0]))
  f:close()
  local ok, err = os.rename(tmp, conf.state)
  if not ok then ngx.log(ngx.ERR, "keygate: state ", conf.state, " not saved: ", err) end
end

-- Installs a file if it changed since it was last installed, by the core's
-- file stamp (keygate_file_stamp: inode, size, nanosecond times — nothing is
-- read while it is unchanged). A missing trust update or revocation file is
-- "none yet"; a missing snapshot is an error. A refused artifact is logged
-- and retried on every tick (it may be accepted once the trust it needs
-- arrives); state is kept.
local function load(path, fn, what)
  if not path then return false end
  local rc = lib.keygate_file_stamp(path, #path, stamp_buf, STAMP_MAX, stamp_len)
  if rc ~= 0 then
    if what == "snapshot" or rc ~= 6 then -- 6: FILE_NOT_FOUND
      ngx.log(ngx.ERR, "keygate: ", what, " ", path, ": ", message(rc))
    end
    return false
  end
  local stamp = ffi.string(stamp_buf, stamp_len[0])
  if seen[path] == stamp then return false end
  local data = slurp(path)
  if not data then return false end
  local rc = lib[fn](verifier, data, #data)
  if rc ~= 0 then
    ngx.log(ngx.ERR, "keygate: ", what, " ", path, " refused: ", message(rc))
    return false
  end
  seen[path] = stamp
  return true
end

-- The verifier from the pinned trust file and the saved high-water marks.
local function start()
  local trust, err = slurp(conf.trust)
  if not trust then
    ngx.log(ngx.ERR, "keygate: trust ", conf.trust, ": ", err)
    return
  end
  local out = ffi.new("keygate_verifier*[1]")
  local rc = lib.keygate_verifier_new(trust, #trust, out)
  if rc ~= 0 then
    ngx.log(ngx.ERR, "keygate: trust refused: ", message(rc))
    return
  end
  local v = ffi.gc(out[0], lib.keygate_verifier_free)
  local state = conf.state and slurp(conf.state)
  if state then
    rc = lib.keygate_verifier_restore_state(v, state, #state)
    if rc ~= 0 then
      -- Refuse to run on a garbled or foreign state rather than forget the floor.
      ngx.log(ngx.ALERT, "keygate: state ", conf.state, " refused: ", message(rc))
      return
    end
  end
  verifier = v
end

-- Publishes this worker's counters in the shared dict, so any worker's
-- metrics() adds every worker up.
local function publish_stats()
  local dict = conf.stats_dict and ngx.shared[conf.stats_dict]
  if not dict or not verifier then return end
  local buf, len = ffi.new("char[?]", STATS_TEXT), ffi.new("size_t[1]")
  if lib.keygate_verifier_stats_text(verifier, buf, STATS_TEXT, len) ~= 0 then return end
  dict:set("keygate:stats:" .. ngx.worker.id(), ffi.string(buf, len[0]), STATS_STALE)
end

local function reload(premature)
  if premature then return end
  if not verifier then start() end
  if not verifier then return end
  local changed = load(conf.trust, "keygate_verifier_load_trust", "trust")
  changed = load(conf.snapshot, "keygate_verifier_load_snapshot", "snapshot") or changed
  changed = load(conf.revocations, "keygate_verifier_load_revocations", "revocations") or changed
  if changed then save_state() end
  publish_stats()
end

--- Creates this worker's verifier and starts the reload timer (armed even
--- when the trust cannot be loaded yet: the worker keeps trying).
function _M.init(opts)
  conf = opts
  lib = ffi.load(opts.lib or "keygate")
  reload(false)
  ngx.timer.every(opts.interval or 1, reload)
end

local function policy_for(opts)
  local realm, header = opts.realm or "keygate", opts.principal_header or "X-Keygate-Principal"
  local retry = opts.retry_after or 5
  local id = realm .. "\0" .. header .. "\0" .. retry
  local p = policies[id]
  if p then return p end
  local out = ffi.new("keygate_policy*[1]")
  local rc = lib.keygate_policy_new(realm, #realm, header, #header, retry, out)
  if rc ~= 0 then error("resty.keygate: realm " .. realm .. " / principal header " .. header .. ": " .. message(rc)) end
  p = ffi.gc(out[0], lib.keygate_policy_free)
  policies[id] = p
  return p
end

local function add_response_headers(a)
  for i = 0, tonumber(a.response_headers_len) - 1 do
    local h = a.response_headers[i]
    ngx.header[ffi.string(h.name)] = ffi.string(h.value, h.value_len)
  end
end

--- The access-phase check. opts: { scope = "...", realm = "keygate",
--- principal_header = "X-Keygate-Principal", retry_after = 5 }.
function _M.access(opts)
  opts = opts or {}
  local policy = policy_for(opts)
  local raw = ngx.req.get_headers(0, true)
  local names, values = {}, {}
  for name, v in pairs(raw) do
    if type(v) == "table" then
      for _, x in ipairs(v) do names[#names + 1], values[#values + 1] = name, x end
    else
      names[#names + 1], values[#values + 1] = name, v
    end
  end
  local n = #names
  local hs = ffi.new("keygate_header[?]", n)
  for i = 1, n do
    local h = hs[i - 1]
    h.name, h.name_len, h.value, h.value_len = names[i], #names[i], values[i], #values[i]
  end
  local scope = opts.scope
  local rc = lib.keygate_verifier_check(verifier, hs, n, scope, scope and #scope or 0, 0, policy, answer)
  if rc ~= 0 then
    ngx.log(ngx.ERR, "keygate: check failed: ", message(rc))
    return ngx.exit(500)
  end
  local a = answer
  local kg = { forward = a.forward, headers = {} }
  if a.verified then
    kg.outcome = ffi.string(lib.keygate_outcome_name(a.verdict.outcome))
    kg.principal = ffi.string(a.verdict.principal, a.verdict.principal_len)
  end
  ngx.ctx.keygate = kg
  if not a.forward then
    if not verifier then ngx.log(ngx.ERR, "keygate: no trust anchor loaded") end
    add_response_headers(a)
    return ngx.exit(a.status)
  end
  for i = 1, n do
    if lib.keygate_policy_strips(policy, names[i], #names[i], values[i], #values[i]) then
      ngx.req.clear_header(names[i])
    end
  end
  ngx.req.set_header(opts.principal_header or "X-Keygate-Principal",
    ffi.string(a.principal_value, a.principal_value_len))
  for i = 0, tonumber(a.response_headers_len) - 1 do
    local h = a.response_headers[i]
    kg.headers[#kg.headers + 1] = { ffi.string(h.name), ffi.string(h.value, h.value_len) }
  end
end

--- Adds the answer's response headers (Deprecation/Sunset for a rotated key)
--- to the upstream's response.
function _M.header_filter()
  local kg = ngx.ctx.keygate
  if kg and kg.forward then
    for _, h in ipairs(kg.headers) do ngx.header[h[1]] = h[2] end
  end
end

--- Prometheus text of the counters, every worker added up when init() was
--- given a `stats_dict` (a lua_shared_dict); else this worker's alone.
function _M.metrics()
  if not verifier then return ngx.exit(503) end
  publish_stats()
  local texts = {}
  local dict = conf.stats_dict and ngx.shared[conf.stats_dict]
  if dict then
    for id = 0, ngx.worker.count() - 1 do
      texts[#texts + 1] = dict:get("keygate:stats:" .. id)
    end
  end
  if #texts == 0 then
    local buf, len = ffi.new("char[?]", STATS_TEXT), ffi.new("size_t[1]")
    if lib.keygate_verifier_stats_text(verifier, buf, STATS_TEXT, len) ~= 0 then return ngx.exit(500) end
    texts[1] = ffi.string(buf, len[0])
  end
  local all = table.concat(texts)
  local size, len = 65536, ffi.new("size_t[1]")
  local out = ffi.new("char[?]", size)
  local rc = lib.keygate_stats_merge_prometheus(all, #all, out, size, len)
  if rc == 3 then -- BUFFER_TOO_SMALL: len holds the size needed
    size = tonumber(len[0])
    out = ffi.new("char[?]", size)
    rc = lib.keygate_stats_merge_prometheus(all, #all, out, size, len)
  end
  if rc ~= 0 then
    ngx.log(ngx.ERR, "keygate: metrics: ", message(rc))
    return ngx.exit(500)
  end
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(ffi.string(out, len[0]))
end

return _M
