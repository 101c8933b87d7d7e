-- Delete KEYS[1] only while it still holds ARGV[1], so a late invalidation never removes a value
-- another caller has just stored.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
