-- Claim message keys for one writer. ARGV = ttl seconds, writer epoch, keys joined by newlines.
-- Returns one digit per key: 0 = new (now pending under this writer), 1 = already stored,
-- 2 = pending under another writer, which may have died after inserting: the caller asks ClickHouse,
-- 3 = pending under this writer: in flight in this process right now.
-- Keys travel as one string, not one argument each: packing and parsing 100k arguments costs the
-- client more than Redis spends on the keys.
local ttl, mark = ARGV[1], 'p:' .. ARGV[2]
local out = {}
for name in string.gmatch(ARGV[3], '[^\n]+') do
  if redis.call('SET', name, mark, 'NX', 'EX', ttl) then
    out[#out + 1] = '0'
  else
    local state = redis.call('GET', name)
    if state == 's' then
      out[#out + 1] = '1'
    elseif state == mark then
      out[#out + 1] = '3'
    else
      out[#out + 1] = '2'
    end
  end
end
return table.concat(out)
