-- The ceiling: the same server's cheapest route, through the same layers.
request = function()
  return wrk.format("GET", "/healthz")
end
