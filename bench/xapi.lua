-- xAPI statements in arrays of 100 (issue 22): each a result for a random enrolled person
-- (3 in 4 failed, with a score: each changes its enrolment's attempts), with an id as
-- LMSs send them (so each is checked for a resend), with Basic auth.
local auth = "Basic " .. os.getenv("LRS_BASIC")
local people = tonumber(os.getenv("LRS_PEOPLE") or "10000")
local verbs = {"failed", "failed", "failed", "experienced"}

-- Each thread its own random sequence (they would otherwise send the same ids).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init()
  math.randomseed(os.time() * 1000 + seed)
end

local function uuid()
  return string.format("%08x-%04x-4%03x-%04x-%04x%08x", math.random(0, 0x7fffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff),
    math.random(0, 0xffff), math.random(0, 0x7fffffff))
end

request = function()
  local items = {}
  for i = 1, 100 do
    local who = math.random(0, people - 1)
    items[i] = string.format(
      '{"id":"%s","actor":{"mbox":"mailto:user%d@bench.example","name":"User %d"},' ..
      '"verb":{"id":"http://adlnet.gov/expapi/verbs/%s","display":{"en-US":"%s"}},' ..
      '"object":{"id":"https://lms.bench.example/activities/password-management",' ..
      '"definition":{"name":{"en-US":"Password management"}}},' ..
      '"result":{"score":{"scaled":%.2f},"success":false,"duration":"PT%dM"}}',
      uuid(), who, who, verbs[(i % 4) + 1], verbs[(i % 4) + 1], math.random(), math.random(1, 30))
  end
  return wrk.format("POST", "/xapi/statements",
    {["Authorization"] = auth, ["Content-Type"] = "application/json",
     ["X-Experience-API-Version"] = "1.0.3"},
    "[" .. table.concat(items, ",") .. "]")
end
