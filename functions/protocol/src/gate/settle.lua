-- The safety gate, last step: the fleet brake's answer back in the
-- container's slot. Same KEYS as container.lua.
-- ARGV:
--   1 command id   2 verdict (allowed or brake)   3 reason
--   4 record TTL seconds   5 audit entry JSON (an AuditRequest: without verdict,
--   reason, at_ms)   6 audit max length   7 audit TTL seconds
-- A brake undoes the reservation: the action log loses the id, the
-- remediation record and the escalation step (KEYS[6]) are what they were
-- before. Returns the actions of the
-- last hour.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local before = redis.call('HGET', KEYS[4], ARGV[1])
if not before then
  -- Settled already (a redelivery raced the first delivery).
  return redis.call('ZCARD', KEYS[2])
end
redis.call('HDEL', KEYS[4], ARGV[1])
local ladder = redis.call('HGET', KEYS[4], ARGV[1] .. ':ladder')
redis.call('HDEL', KEYS[4], ARGV[1] .. ':ladder')
if ARGV[2] ~= 'allowed' then
  -- The escalation step it took is not taken either.
  if ladder == '' then
    redis.call('DEL', KEYS[6])
  elseif ladder then
    redis.call('SET', KEYS[6], ladder, 'KEEPTTL')
  end
  redis.call('ZREM', KEYS[2], ARGV[1])
  if before == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], before, 'EX', tonumber(ARGV[4]))
  end
end
local entry = cjson.decode(ARGV[5])
entry['verdict'] = ARGV[2]
entry['reason'] = ARGV[3]
entry['at_ms'] = now_ms
redis.call('LPUSH', KEYS[3], cjson.encode(entry))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[7]))
return redis.call('ZCARD', KEYS[2])
