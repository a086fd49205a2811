-- Arrays of 1,000 events per POST.
local token = os.getenv("EVENTS_TOKEN")
local items = {}
for i = 1, 1000 do
  items[i] = string.format(
    '{"target_user":"user%d@bench.example","event_type":"dashlane_user_typed_compromised_password",' ..
    '"description":"logged in to Dashlane","source":"bench","risk_level":8}', i % 1000)
end
local body = "[" .. table.concat(items, ",") .. "]"
request = function()
  return wrk.format("POST", "/events",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
