-- Claim message keys for one writer: ARGV = ttl seconds, writer epoch, key...
-- Per key: 0 = new (now marked pending by this writer), 1 = already stored, 2 = pending by some writer
-- that may have died after inserting: the caller must check ClickHouse.
local ttl, mark = ARGV[1], 'p:' .. ARGV[2]
local out = {}
for i = 3, #ARGV do
  if redis.call('SET', ARGV[i], mark, 'NX', 'EX', ttl) then
    out[#out + 1] = 0
  elseif redis.call('GET', ARGV[i]) == 's' then
    out[#out + 1] = 1
  else
    out[#out + 1] = 2
  end
end
return out
