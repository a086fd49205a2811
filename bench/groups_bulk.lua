-- Arrays of 1,000 events, now, for random people of PEOPLE, of types the benchmark's
-- smart groups watch. A few hundred bodies are built up front so Lua does not limit wrk.
local token = os.getenv("EVENTS_TOKEN")
local people = tonumber(os.getenv("PEOPLE") or "100000")
local types = {
  "dashlane_user_typed_compromised_password", "dashlane_user_typed_weak_password",
  "dashlane_user_dismissed_vault_phishing_alert", "dashlane_user_dismissed_ai_phishing_alert",
}
local bodies, n = {}, 0
init = function()
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
  for b = 1, 200 do
    local items = {}
    for i = 1, 1000 do
      items[i] = string.format(
        '{"target_user":"user%d@bench.example","event_type":"%s",' ..
        '"description":"logged in to Dashlane","source":"bench","risk_level":4}',
        math.random(1, people), types[math.random(#types)])
    end
    bodies[b] = "[" .. table.concat(items, ",") .. "]"
  end
end
request = function()
  n = n % #bodies + 1
  return wrk.format("POST", "/events",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, bodies[n])
end
