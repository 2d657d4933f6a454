-- lookup.lua at a fixed rate: each connection waits DELAY_MS on average (±50 %) between
-- requests. args: KEYS_FILE API_KEY RESOURCE_CODE DELAY_MS
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "lookup.lua")
local base_init = init
local delay_ms

function init(args)
  base_init(args)
  delay_ms = tonumber(args[4])
end

-- wrk takes whole milliseconds: the added random fraction makes the floor's mean the delay
-- asked for, fractions included (a rounded delay set the rate up to 10 % off).
function delay()
  return math.floor(delay_ms * (0.5 + math.random()) + math.random())
end
