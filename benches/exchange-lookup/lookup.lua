-- wrk script: GET records/{key} with a random present key per request.
-- args: KEYS_FILE API_KEY RESOURCE_CODE
local keys = {}
local auth, prefix

function init(args)
  for line in io.lines(args[1]) do
    keys[#keys + 1] = line
  end
  auth = "Bearer " .. args[2]
  prefix = "/api/v1/exchange/" .. args[3] .. "/records/"
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000003)
end

function request()
  return wrk.format("GET", prefix .. keys[math.random(#keys)], { ["Authorization"] = auth })
end
