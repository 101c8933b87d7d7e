-- apply_watch(W, at, now): the watch changes in ARGV from index at: their count, then (member, next check ms,
-- state JSON) each. A next check >= 0 schedules a check; -1 forgets the resource; -2 stops polling but keeps
-- what was seen, in the settled index (pruned after the retention period, prune_settled.lua).
-- W holds the keys: agreements, charges, state, settled. Returns the index after the changes.
local function apply_watch(W, at, now)
  local changes = tonumber(ARGV[at])
  for i = at + 1, at + 3 * changes, 3 do
    local member, score = ARGV[i], tonumber(ARGV[i + 1])
    local watch = W.agreements
    if string.sub(member, 1, 7) == 'charge:' then watch = W.charges end
    if score < 0 then
      redis.call('ZREM', watch, member)
      if score == -1 then
        redis.call('HDEL', W.state, member)
        redis.call('ZREM', W.settled, member)
      else
        redis.call('HSET', W.state, member, ARGV[i + 2])
        redis.call('ZADD', W.settled, now, member)
      end
    else
      redis.call('ZADD', watch, score, member)
      redis.call('HSET', W.state, member, ARGV[i + 2])
      redis.call('ZREM', W.settled, member)
    end
  end
  return at + 1 + 3 * changes
end
