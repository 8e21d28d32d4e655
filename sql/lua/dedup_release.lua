-- Forget keys a request claimed but could not store. ARGV = the request's claim mark, keys joined by
-- newlines.
local n = 0
for name in string.gmatch(ARGV[2], '[^\n]+') do
  if redis.call('GET', name) == ARGV[1] then
    redis.call('DEL', name)
    n = n + 1
  end
end
return n
