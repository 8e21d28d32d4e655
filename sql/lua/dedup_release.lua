-- Forget keys this writer claimed but could not store: ARGV = writer epoch, key...
local mark, n = 'p:' .. ARGV[1], 0
for i = 2, #ARGV do
  if redis.call('GET', ARGV[i]) == mark then
    redis.call('DEL', ARGV[i])
    n = n + 1
  end
end
return n
