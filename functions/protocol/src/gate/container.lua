-- The safety gate, first step: the container's own limits, in the
-- container's slot (every key carries the tag {host/name}). Also the
-- gate's preview (ARGV[5] = 1): the same checks in the same order, and
-- nothing written.
-- KEYS:
--   1 remediation record (seed shape: {"last_action", "count"})
--   2 action log of the container: sorted set of command ids scored by epoch ms
--   3 audit list of the container (newest first)
--   4 pending: command id -> the record before it, for actions allowed here
--     that still wait for the fleet brake's answer (step two, another slot)
--   5 the open circuit breaker: its reason, set when the hourly cap is hit
--     (the fixes did not hold), expiring after ARGV[4] seconds
--   6 the escalation ladder's last step (a Rung's JSON), expiring once the
--     container has been quiet
-- ARGV:
--   1 cooldown seconds   2 max actions per hour
--   3 a refusal decided before the gate (a silence holding for the
--     container, its notify-only policy, its held), or empty
--   4 how long an opened circuit breaker stays open, seconds
--   5 1 for a preview (then 12 to 18 are not read), else 0
--   6 the escalation ladder's plan (gate::ladder::plan): empty (no
--     ladder: the hourly cap decides), take, wait, stopped or exhausted
--   7 its text: the step's (take) or the reason (the others; exhausted:
--     the circuit breaker's)
--   8 the ladder step (KEYS[6]) the plan was made from, or empty
--   9 take: the step's number   10 take: its action
--  11 take: how long the step is remembered, seconds
--  12 command id        13 seed timestamp    14 record TTL seconds
--  15 audit entry JSON (an AuditRequest: without verdict, reason, at_ms)
--  16 audit max length  17 audit TTL seconds
--  18 1 when the fleet brake must still decide
-- Returns {verdict, reason, count, cooldown left ms}; verdict is allowed,
-- reserved (allowed here, the fleet brake decides next), refused, opened
-- (refused, and the circuit breaker opened by this very request, or by the
-- next one in a preview), wait (the ladder's last step has no outcome yet,
-- or moved while deciding: ask again; not audited), duplicate or pending
-- (a redelivered request whose fleet decision never finished); count is
-- the actions of the last hour, this one included when it is taken.
-- Redis' own clock, not the caller's: responders on different machines
-- must agree on what "an hour ago" means.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cooldown_ms = tonumber(ARGV[1]) * 1000
local max_per_hour = tonumber(ARGV[2])
local preview = ARGV[5] == '1'

-- The actions of the last hour; a decision also forgets the older ones.
local hour_ago = now_ms - 3600000
if not preview then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', hour_ago)
end
local count = redis.call('ZCOUNT', KEYS[2], '(' .. hour_ago, '+inf')

-- The same request delivered again (the bridge redelivers after a crash):
-- already allowed once, so not counted twice; the caller re-dispatches
-- only if the first dispatch never happened. Not audited twice either.
if not preview and redis.call('ZSCORE', KEYS[2], ARGV[12]) then
  if redis.call('HEXISTS', KEYS[4], ARGV[12]) == 1 then
    return {'pending', '', count, 0}
  end
  return {'duplicate', 'already allowed', count, 0}
end

local verdict, reason = 'allowed', ''
local last = redis.call('ZREVRANGEBYSCORE', KEYS[2], '+inf', '(' .. hour_ago, 'WITHSCORES', 'LIMIT', 0, 1)
local cooldown_left = 0
if #last > 0 then
  cooldown_left = math.max(0, cooldown_ms - (now_ms - tonumber(last[2])))
end
local open = redis.call('GET', KEYS[5])
local plan = ARGV[6]
if plan ~= '' and (redis.call('GET', KEYS[6]) or '') ~= ARGV[8] then
  -- Another request climbed since this one read the ladder: decide again.
  plan = 'moved'
end
-- A ladder climbing past its first step paces itself (each step waits
-- for the previous one's reported outcome, and there are at most six), so
-- the cooldown, which spaces out fresh incidents, does not hold it back:
-- a restart that did not hold is followed by the next step at once.
local climbing = plan ~= '' and not (plan == 'take' and tonumber(ARGV[9]) == 1)
if ARGV[3] ~= '' then
  -- An operator's silence, the owner's policy or the collector's hold
  -- comes first: each says why better than a cooldown.
  verdict = 'refused'
  reason = ARGV[3]
elseif cooldown_left > 0 and not climbing then
  verdict = 'refused'
  reason = string.format('cooldown: last action %.1fs ago, cooldown is %ss',
    (now_ms - tonumber(last[2])) / 1000, ARGV[1])
elseif open then
  -- Open until it expires or an operator resets it, even once the actions
  -- that opened it have left the hour.
  verdict = 'refused'
  reason = open
elseif plan == 'wait' or plan == 'moved' then
  verdict = 'wait'
  reason = (plan == 'wait') and ARGV[7] or 'escalation: the ladder moved while deciding; ask again'
elseif plan == 'stopped' then
  verdict = 'refused'
  reason = ARGV[7]
elseif plan == 'exhausted' then
  -- The ladder's top did not hold and it holds no stop: as the hourly cap.
  verdict = 'opened'
  reason = ARGV[7]
  if not preview then
    redis.call('SET', KEYS[5], reason, 'EX', tonumber(ARGV[4]))
  end
elseif plan == 'take' then
  -- A step of the ladder: bounded by the ladder's length, so the hourly
  -- cap, which would stop the climb, does not apply.
  reason = ARGV[7]
elseif count >= max_per_hour then
  -- This many fixes within the hour, and the container needs another: they
  -- did not hold. Open the breaker; the caller raises a critical alert.
  verdict = 'opened'
  reason = string.format('circuit breaker open: %d actions in the last hour did not hold (max %d), open for %ss or until hemostat reset', count, max_per_hour, ARGV[4])
  if not preview then
    redis.call('SET', KEYS[5], reason, 'EX', tonumber(ARGV[4]))
  end
end

if preview or verdict == 'wait' then
  return {verdict, reason, count, cooldown_left}
end

if verdict == 'allowed' then
  -- Taken now, so a concurrent request for this container sees the
  -- cooldown even while the fleet brake is still deciding.
  local before = redis.call('GET', KEYS[1]) or ''
  redis.call('ZADD', KEYS[2], now_ms, ARGV[12])
  redis.call('PEXPIRE', KEYS[2], 3600000)
  count = count + 1
  redis.call('SET', KEYS[1], cjson.encode({last_action = ARGV[13], count = count}), 'EX', tonumber(ARGV[14]))
  if plan == 'take' then
    redis.call('SET', KEYS[6], cjson.encode({step = tonumber(ARGV[9]), action = ARGV[10],
      command_id = ARGV[12], at_ms = now_ms}), 'EX', tonumber(ARGV[11]))
  end
  if ARGV[18] == '1' then
    redis.call('HSET', KEYS[4], ARGV[12], before)
    if plan == 'take' then
      -- The step before, for settle.lua to put back if the brake says no.
      redis.call('HSET', KEYS[4], ARGV[12] .. ':ladder', ARGV[8])
    end
    redis.call('PEXPIRE', KEYS[4], 3600000)
    return {'reserved', reason, count, cooldown_left}
  end
end

local entry = cjson.decode(ARGV[15])
if verdict == 'allowed' and plan == 'take' then
  -- The step taken, not the action asked for (a refusal names that).
  entry['action'] = ARGV[10]
end
-- An opening is a refusal; its reason says the breaker opened.
entry['verdict'] = (verdict == 'opened') and 'refused' or verdict
entry['reason'] = reason
entry['at_ms'] = now_ms
redis.call('LPUSH', KEYS[3], cjson.encode(entry))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[16]) - 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[17]))

return {verdict, reason, count, cooldown_left}
