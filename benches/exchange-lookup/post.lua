-- wrk script: POST a JSON body (verify or records:batch) built from random present keys.
-- args: KEYS_FILE API_KEY RESOURCE_CODE ENDPOINT KEYS_PER_CALL [NAME]
local keys = {}
local auth, path, per_call, endpoint

function init(args)
  for line in io.lines(args[1]) do
    keys[#keys + 1] = line
  end
  auth = "Bearer " .. args[2]
  endpoint = args[4]
  path = "/api/v1/exchange/" .. args[3] .. "/" .. endpoint
  per_call = tonumber(args[5])
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000003)
end

function request()
  local body
  if endpoint == "verify" then
    body = '{"key":"' .. keys[math.random(#keys)] .. '","claims":{"gender":"男","birth_date":"1990-01-01"}}'
  else
    local picked = {}
    for i = 1, per_call do
      picked[i] = '"' .. keys[math.random(#keys)] .. '"'
    end
    body = '{"keys":[' .. table.concat(picked, ",") .. ']}'
  end
  return wrk.format("POST", path, { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
end
