package = "keygate"
version = "0.1.0-1"
source = { url = "git+https://github.com/keygate/keygate.git", tag = "v0.1.0" }
description = {
  summary = "API-key verification for OpenResty/Kong/APISIX against signed keygate artifacts",
  detailed = "LuaJIT FFI over libkeygate (install it with bindings/c/install.sh).",
  license = "Apache-2.0 OR MIT",
}
dependencies = { "lua >= 5.1" }
build = {
  type = "builtin",
  modules = { ["resty.keygate"] = "lib/resty/keygate.lua" },
}
