-- LuaJIT FFI smoke test over libkeygate: luajit smoke.lua LIB FIXTURES_DIR
local ffi = require("ffi")
-- The declarations are resty.keygate's own (loading it needs no nginx), so this
-- also checks the cdef the OpenResty module ships against the library.
package.path = arg[0]:gsub("[^/]*$", "") .. "../../nginx/lua/lib/?.lua;" .. package.path
require("resty.keygate")
local lib = ffi.load(arg[1])
local dir = arg[2]
local function slurp(name)
  local f = assert(io.open(dir .. "/" .. name, "rb")); local s = f:read("*a"); f:close(); return s
end
local keys = {}
for name, key in slurp("keys.txt"):gmatch("(%S+) (%S+)") do keys[name] = key end
local trust = slurp("trust.kgt")
local out = ffi.new("keygate_verifier*[1]")
assert(lib.keygate_verifier_new(trust, #trust, out) == 0, "verifier_new")
local v = ffi.gc(out[0], lib.keygate_verifier_free)
local snap = slurp("snapshot-1.kgs")
assert(lib.keygate_verifier_load_snapshot(v, snap, #snap) == 0, "load_snapshot")
local d = ffi.new("keygate_verdict")
local want = { valid = "valid", deprecated = "valid_deprecated", revoked = "revoked", expired = "expired",
  not_yet_valid = "not_yet_valid", unknown = "unknown" }
local n = 0
for name, outcome in pairs(want) do
  local k = keys[name]
  assert(lib.keygate_verifier_verify(v, k, #k, "invoices:read", 13, 1767225600ULL, d) == 0)
  local got = ffi.string(lib.keygate_outcome_name(d.outcome))
  assert(got == outcome, name .. ": got " .. got .. ", want " .. outcome)
  n = n + 1
end
assert(lib.keygate_verifier_verify(v, keys.valid, #keys.valid, nil, 0, 1767225600ULL, d) == 0)
assert(ffi.string(d.principal) == "billing-service")
print(("luajit smoke: %d outcomes checked via FFI (%s)"):format(n, ffi.string(lib.keygate_version())))
