-- wrk script for scripts/bench.sh: posts the given AdmissionReview files in turn.
-- Arguments: PATH=FILE ... (PATH is /validate or /mutate).
local requests = {}

function init(args)
  for _, arg in ipairs(args) do
    local path, file = arg:match("^([^=]+)=(.+)$")
    local f = assert(io.open(file, "rb"))
    local body = f:read("*a")
    f:close()
    requests[#requests + 1] = wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
  end
end

local i = 0
function request()
  i = i % #requests + 1
  return requests[i]
end
