-- aigw: replace reservations by what was used (src/limits/shared.rs).
-- KEYS[i] a counter of one window (<base>:<window>); ARGV[i] the amount to add (negative:
-- the reservation was larger than the use). A counter that is gone (its window ended, or
-- Redis lost its data) is left alone; a count never goes below zero.
for i = 1, #KEYS do
  if tonumber(ARGV[i]) ~= 0 and redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[i]) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return 1
