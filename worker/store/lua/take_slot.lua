-- take_slot(key, limit, window_ms, unique) -> 0 if a slot was taken, else ms until one frees (nothing taken).
-- A sliding-window log: a sorted set of send times, trimmed and counted in one step so every pod sees one count.
local function take_slot(key, limit, window, unique)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now, now .. '-' .. unique)
    redis.call('PEXPIRE', key, window)
    return 0
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + window - now
  if wait < 1 then wait = 1 end
  return wait
end
