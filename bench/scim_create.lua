-- SCIM provisioning for bench/scim.sh: each request creates one user with a userName of
-- its own (thread number and count), as an identity provider's POST /Users does. Each
-- wrk thread stops after its share of SCIM_USERS.
local token = os.getenv("SCIM_TOKEN")
local total = tonumber(os.getenv("SCIM_USERS") or "100000")
local threads = tonumber(os.getenv("SCIM_THREADS") or "2")
local counter = 0
local quota, sent, done = 0, 0, 0

setup = function(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

init = function()
  quota = math.ceil(total / threads)
end

request = function()
  sent = sent + 1
  local name = string.format("u%d-%d@bench.example", tid, sent)
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User",' ..
    '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],' ..
    '"userName":"%s","externalId":"ext-%d-%d","name":{"givenName":"User","familyName":"%d"},' ..
    '"displayName":"User %d","emails":[{"value":"%s","type":"work","primary":true}],' ..
    '"active":true,"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":' ..
    '{"department":"Dept%d","employeeNumber":"%d"}}',
    name, tid, sent, sent, sent, name, sent % 10, sent)
  return wrk.format("POST", "/scim/v2/Users",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/scim+json"}, body)
end

response = function(status)
  done = done + 1
  if done >= quota then wrk.thread:stop() end
end
