-- Seeds history for the smart-group benchmark: arrays of 1,000 events, each for a random
-- person of PEOPLE, of a random catalog type, that occurred at a random instant of the
-- last 12 months. Each wrk thread stops after its share of SEED_EVENTS.
local token = os.getenv("EVENTS_TOKEN")
local people = tonumber(os.getenv("PEOPLE") or "100000")
local total = tonumber(os.getenv("SEED_EVENTS") or "10000000")
local threads = tonumber(os.getenv("SEED_THREADS") or "2")
local types = {
  "dashlane_user_typed_compromised_password", "dashlane_user_typed_compromised_password",
  "dashlane_user_entered_credential_phishing_website_ai",
  "dashlane_user_dismissed_vault_phishing_alert", "dashlane_user_dismissed_vault_phishing_alert",
  "dashlane_user_received_vault_phishing_alert", "dashlane_user_received_vault_phishing_alert",
  "dashlane_user_entered_password_risky_site", "dashlane_user_typed_weak_password",
  "dashlane_user_typed_weak_password", "dashlane_user_dismissed_ai_phishing_alert",
  "dashlane_user_dismissed_ai_phishing_alert", "dashlane_user_changed_at_risk_password",
  "dashlane_user_received_credential_risk_alert",
}
local descriptions = { "logged in to Dashlane", "not logged in to Dashlane", "no Dashlane account" }
local year = 365 * 86400
local quota, sent, done = 0, 0, 0


init = function()
  quota = math.ceil(total / 1000 / threads)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0) % 100000)
end

request = function()
  sent = sent + 1
  local now = os.time()
  local items = {}
  for i = 1, 1000 do
    local t = now - math.random(0, year)
    items[i] = string.format(
      '{"target_user":"user%d@bench.example","event_type":"%s","description":"%s",' ..
      '"occurred_date":"%s","risk_level":%d}',
      math.random(1, people), types[math.random(#types)], descriptions[math.random(3)],
      os.date("!%Y-%m-%dT%H:%M:%SZ", t), math.random(1, 9))
  end
  return wrk.format("POST", "/events",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"},
    "[" .. table.concat(items, ",") .. "]")
end

response = function(status)
  done = done + 1
  if done >= quota then wrk.thread:stop() end
end
