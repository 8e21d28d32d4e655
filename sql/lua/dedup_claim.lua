-- Claim message keys for one request. ARGV = ttl seconds, process epoch, request id, keys joined by
-- newlines. A claimed key holds 'p:<epoch>:<request>'; once that request's events are in ClickHouse,
-- one key 'c:<epoch>:<request>' says so for all of them (one write per request, not per event).
-- Returns one digit per key: 0 = new (now claimed by this request), 1 = already stored,
-- 2 = claimed by a request of another process that may have died after inserting: ask ClickHouse,
-- 3 = claimed by a request of this process still in flight.
-- Keys travel as one string, not one argument each: packing and parsing 100k arguments costs the
-- client more than Redis spends on the keys.
local ttl, epoch = ARGV[1], ARGV[2]
local mark = 'p:' .. epoch .. ':' .. ARGV[3]
local own = 'p:' .. epoch .. ':'
local committed = {}
local out = {}
for name in string.gmatch(ARGV[4], '[^\n]+') do
  if redis.call('SET', name, mark, 'NX', 'EX', ttl) then
    out[#out + 1] = '0'
  else
    local state = redis.call('GET', name)
    if state == 's' then
      out[#out + 1] = '1'
    elseif state then
      local done = committed[state]
      if done == nil then
        done = redis.call('EXISTS', 'c:' .. string.sub(state, 3)) == 1
        committed[state] = done
      end
      if done then
        out[#out + 1] = '1'
      elseif string.sub(state, 1, #own) == own then
        out[#out + 1] = '3'
      else
        out[#out + 1] = '2'
      end
    else
      out[#out + 1] = '2'  -- expired between SET and GET: let ClickHouse decide
    end
  end
end
return table.concat(out)
