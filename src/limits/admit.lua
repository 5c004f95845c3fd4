-- aigw: decide one admission, all or nothing (src/limits/shared.rs, docs/limits.md).
-- KEYS[1]   the epoch marker (set when absent: tells that Redis lost its data)
-- KEYS[i+1] counter i without its window: <prefix>:c|t:<endpoint>:<period>:<scope>, <prefix>:b:<budget>:<period>
-- ARGV[1]   a fresh epoch value; ARGV[2] the time in seconds ("" = Redis's own clock)
-- ARGV[3i], ARGV[3i+1], ARGV[3i+2]: counter i's limit, the amount to add, its period (seconds)
-- Returns {admitted 1|0, first counter that does not fit (1-based) or 0, now, epoch created 1|0,
--          then per counter: window index, count (after adding, when admitted)}.
local now
if ARGV[2] ~= '' then now = tonumber(ARGV[2]) else now = tonumber(redis.call('TIME')[1]) end
local created = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then created = 1 end
local out = {1, 0, now, created}
local n = #KEYS - 1
for i = 1, n do
  local limit = tonumber(ARGV[3 * i])
  local amount = tonumber(ARGV[3 * i + 1])
  local period = tonumber(ARGV[3 * i + 2])
  local w = math.floor(now / period)
  local used = tonumber(redis.call('GET', KEYS[i + 1] .. ':' .. w) or '0')
  out[3 + 2 * i] = w
  out[4 + 2 * i] = used
  if out[1] == 1 and used + amount > limit then
    out[1] = 0
    out[2] = i
  end
end
if out[1] == 0 then return out end
for i = 1, n do
  local amount = ARGV[3 * i + 1]
  if tonumber(amount) > 0 then
    local period = tonumber(ARGV[3 * i + 2])
    local w = out[3 + 2 * i]
    local key = KEYS[i + 1] .. ':' .. w
    out[4 + 2 * i] = redis.call('INCRBY', key, amount)
    -- The window's counter lives until a minute after the window ends.
    redis.call('EXPIRE', key, (w + 1) * period - now + 60)
  end
end
return out
