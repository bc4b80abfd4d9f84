-- Parks an action that needs a person's yes, in the container's slot
-- (every key carries the tag {host/name}): the approval record, the
-- container's "one approval waiting" marker and its audit, in one step.
-- KEYS:
--   1 the approval record (a hash)
--   2 the container's waiting marker: `<id> <deadline ms>` of the approval
--     it waits on, expiring at that deadline
--   3 the container's audit list (newest first)
-- ARGV:
--   1 id   2 the request (RemediationNeeded JSON)   3 timeout ms
--   4 audit entry JSON (an AuditRequest: without verdict, reason, at_ms)
--   5 audit max length   6 audit TTL seconds
--   7 how long the record is kept after its deadline, ms
--   8 host   9 container   10 action
-- Returns {'parked', id, deadline ms}, or {'waiting', id, deadline ms} when
-- the container already waits on an approval (that one's id): a second
-- request while one waits is not asked again.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local waiting = redis.call('GET', KEYS[2])
if waiting then
  local id, deadline = string.match(waiting, '^(%S+) (%d+)$')
  return {'waiting', id or '', tonumber(deadline or '0')}
end

local deadline = now_ms + tonumber(ARGV[3])
redis.call('SET', KEYS[2], ARGV[1] .. ' ' .. deadline, 'PX', tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'host', ARGV[8], 'container', ARGV[9], 'action', ARGV[10],
  'state', 'pending', 'request', ARGV[2], 'audit', ARGV[4], 'requested_at_ms', now_ms, 'deadline_ms', deadline)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[7]))

local entry = cjson.decode(ARGV[4])
entry['verdict'] = 'approval_requested'
entry['reason'] = 'waiting for approval ' .. ARGV[1]
entry['at_ms'] = now_ms
redis.call('LPUSH', KEYS[3], cjson.encode(entry))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[6]))
return {'parked', ARGV[1], deadline}
