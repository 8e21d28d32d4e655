-- Set message keys to one state: ARGV = ttl seconds, value ('s' stored, or 'p:<epoch>' pending), key...
for i = 3, #ARGV do
  redis.call('SET', ARGV[i], ARGV[2], 'EX', ARGV[1])
end
return #ARGV - 2
