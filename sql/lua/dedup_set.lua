-- Set message keys to one value. ARGV = ttl seconds, value ('s' stored, or a request's claim mark),
-- keys joined by newlines.
local n = 0
for name in string.gmatch(ARGV[3], '[^\n]+') do
  redis.call('SET', name, ARGV[2], 'EX', ARGV[1])
  n = n + 1
end
return n
