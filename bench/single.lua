-- One event per POST, spread over 1,000 people.
local token = os.getenv("EVENTS_TOKEN")
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"target_user":"user%d@bench.example","event_type":"dashlane_user_typed_weak_password",' ..
    '"description":"logged in to Dashlane","source":"bench","risk_level":4}', n % 1000)
  return wrk.format("POST", "/events",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
