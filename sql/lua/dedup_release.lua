-- Forget keys this writer claimed but could not store. ARGV = writer epoch, keys joined by newlines.
local mark, n = 'p:' .. ARGV[1], 0
for name in string.gmatch(ARGV[2], '[^\n]+') do
  if redis.call('GET', name) == mark then
    redis.call('DEL', name)
    n = n + 1
  end
end
return n
