-- Counts a batch of records exactly once each, atomically.
--
-- KEYS[1]      the metrics hash (series -> number)
-- KEYS[2..]    one dedupe key per record, in batch order
-- ARGV[1]      dedupe TTL in seconds
-- ARGV[2]      the hash field counting duplicate records
-- ARGV[3..]    per record: the number of updates N, then N triples
--              (kind, field, delta): kind "i" is HINCRBY, "f" HINCRBYFLOAT
--
-- Returns one integer per record: 1 counted now, 0 counted before (a
-- redelivery, or the same record twice in one batch): its updates are
-- skipped and the duplicates field is incremented instead.
local ttl = ARGV[1]
local duplicates = ARGV[2]
local pos = 3
local result = {}
for i = 2, #KEYS do
    local n = tonumber(ARGV[pos])
    pos = pos + 1
    if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ttl) then
        for _ = 1, n do
            local kind, field, delta = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2]
            if kind == 'i' then
                redis.call('HINCRBY', KEYS[1], field, delta)
            else
                redis.call('HINCRBYFLOAT', KEYS[1], field, delta)
            end
            pos = pos + 3
        end
        result[#result + 1] = 1
    else
        redis.call('HINCRBY', KEYS[1], duplicates, 1)
        pos = pos + 3 * n
        result[#result + 1] = 0
    end
end
return result
