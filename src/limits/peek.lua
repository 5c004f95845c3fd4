-- aigw: read counters without changing them (GET /aigw/usage; src/limits/shared.rs).
-- KEYS[i] counter i without its window; ARGV[1] the time ("" = Redis's own clock); ARGV[i+1]
-- counter i's period. Returns {now, then per counter: window index, count}.
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else now = tonumber(redis.call('TIME')[1]) end
local out = {now}
for i = 1, #KEYS do
  local w = math.floor(now / tonumber(ARGV[i + 1]))
  out[2 * i] = w
  out[2 * i + 1] = tonumber(redis.call('GET', KEYS[i] .. ':' .. w) or '0')
end
return out
