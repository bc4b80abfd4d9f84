-- Moves an approval from one state to the next, exactly once, and audits
-- the move, in the container's slot (the same keys as park.lua).
-- KEYS:   1 the approval record   2 the container's waiting marker
--         3 the container's audit list
-- ARGV:
--   1 the state it must be in   2 the state it moves to
--   3 who (empty: the answer on record stays)   4 their note (a denial's
--     reason), or empty
--   5 'before' (only before its deadline), 'after' (only once it passed)
--     or 'any'
--   6 the audit verdict, or empty for no entry   7 the audit reason
--   8 audit max length   9 audit TTL seconds
-- Returns {'ok', state}; {'missing', ''} for no such record; {'state',
-- state, by, answered_at_ms} when it is not in ARGV[1] (answered already);
-- {'expired', ''} when its deadline passed; {'early', ''} when not yet.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'missing', ''}
end
local fields = redis.call('HMGET', KEYS[1], 'state', 'deadline_ms', 'by', 'answered_at_ms', 'audit', 'id')
local state, deadline = fields[1], tonumber(fields[2])
if state ~= ARGV[1] then
  return {'state', state, fields[3] or '', fields[4] or ''}
end
if ARGV[5] == 'before' and now_ms >= deadline then
  return {'expired', ''}
end
if ARGV[5] == 'after' and now_ms < deadline then
  return {'early', ''}
end

redis.call('HSET', KEYS[1], 'state', ARGV[2])
-- Who answered stays on record when the responder takes an approval.
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'by', ARGV[3], 'note', ARGV[4], 'answered_at_ms', now_ms)
end
local waiting = redis.call('GET', KEYS[2])
if waiting and string.match(waiting, '^(%S+)') == fields[6] then
  redis.call('DEL', KEYS[2])
end
if ARGV[6] ~= '' then
  local entry = cjson.decode(fields[5])
  entry['verdict'] = ARGV[6]
  entry['reason'] = ARGV[7]
  entry['at_ms'] = now_ms
  redis.call('LPUSH', KEYS[3], cjson.encode(entry))
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[8]) - 1)
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[9]))
end
return {'ok', ARGV[2]}
