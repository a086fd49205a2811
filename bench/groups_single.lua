-- One event per POST, now, for a random person of PEOPLE, of a type the benchmark's
-- smart groups watch (so every event is evaluated).
local token = os.getenv("EVENTS_TOKEN")
local people = tonumber(os.getenv("PEOPLE") or "100000")
local types = {
  "dashlane_user_typed_compromised_password", "dashlane_user_typed_weak_password",
  "dashlane_user_dismissed_vault_phishing_alert", "dashlane_user_dismissed_ai_phishing_alert",
}
init = function() math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000) end
request = function()
  local body = string.format(
    '{"target_user":"user%d@bench.example","event_type":"%s",' ..
    '"description":"logged in to Dashlane","source":"bench","risk_level":4}',
    math.random(1, people), types[math.random(#types)])
  return wrk.format("POST", "/events",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
