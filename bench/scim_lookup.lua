-- Okta's look-up before create, for bench/scim.sh: `userName eq` of a random user that
-- bench/scim_create.lua made (SCIM_USERS over SCIM_THREADS).
local token = os.getenv("SCIM_TOKEN")
local total = tonumber(os.getenv("SCIM_USERS") or "100000")
local threads = tonumber(os.getenv("SCIM_THREADS") or "2")
local quota = math.ceil(total / threads)

init = function()
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

request = function()
  local name = string.format("u%d-%d@bench.example", math.random(0, threads - 1), math.random(1, quota))
  return wrk.format("GET", "/scim/v2/Users?filter=userName%20eq%20%22" .. name .. "%22",
    {["Authorization"] = "Bearer " .. token})
end
