-- Set message keys to one state. ARGV = ttl seconds, value ('s' stored, 'p:<epoch>' pending),
-- keys joined by newlines.
local n = 0
for name in string.gmatch(ARGV[3], '[^\n]+') do
  redis.call('SET', name, ARGV[2], 'EX', ARGV[1])
  n = n + 1
end
return n
