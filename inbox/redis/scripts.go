package redis

import goredis "github.com/redis/go-redis/v9"

// The record of (consumer, key) is a hash; every transition is one of these scripts, so it is atomic. Fields:
//
//	fp  fingerprint (SHA-256 of the payload)      st  state: 1 running, 2 released, 3 completed
//	pk  1 while parked                            ow  owner token of the run that holds (or last held) it
//	lu  lease end, ms since the epoch (running)   at  failed runs (errors and expired leases)
//	res saved result (completed; absent: none)    err last error
//	ra  first begun (or dropped), ms              pl, hd, tp, mid, pa: the parked delivery and when it was parked
//
// Instants come from the server's clock (TIME), never the clients'. A record expires Retention after its last
// change; a parked one does not expire (PERSIST) and is listed in the consumer's parked index, a sorted set
// with every score 0 whose members are the keys, so that ZRANGE BYLEX pages through them in byte order.

// nowMillis is the prologue of every script that needs the time.
const nowMillis = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// beginScript: KEYS record; ARGV fingerprint, owner, lease ms, retention ms, max attempts, expired error.
// Returns {status, attempts, extra}: acquired | takenover {_, at} | completed {_, at, result or ”} |
// busy {_, at, ms left} | parked {_, at} | mismatch {_, at, recorded fingerprint} | park {_, at, old owner}:
// the expired lease is the last attempt allowed, and parkScript must park it with the delivery.
var beginScript = goredis.NewScript(nowMillis + `
local r = redis.call('HMGET', KEYS[1], 'fp', 'st', 'pk', 'ow', 'lu', 'at', 'res')
local lease = tonumber(ARGV[3])
if not r[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'st', '1', 'pk', '0', 'ow', ARGV[2], 'lu', now + lease, 'at', 0, 'ra', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'acquired', 0}
end
local at = tonumber(r[6])
if r[1] ~= ARGV[1] then return {'mismatch', at, r[1]} end
if r[3] == '1' then return {'parked', at} end
if r[2] == '3' then return {'completed', at, r[7] or ''} end
if r[2] == '1' then
  local lu = tonumber(r[5])
  if lu > now then return {'busy', at, lu - now} end
  at = at + 1
  if at >= tonumber(ARGV[5]) then return {'park', at, r[4]} end
  redis.call('HSET', KEYS[1], 'ow', ARGV[2], 'lu', now + lease, 'at', at, 'err', ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'takenover', at}
end
redis.call('HSET', KEYS[1], 'st', '1', 'ow', ARGV[2], 'lu', now + lease)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'acquired', at}
`)

// parkScript: KEYS record, parked index; ARGV owner, '1' to park only an expired lease (a takeover) or '0' (the
// owner parks its run), last error, payload, headers, topic, message id, key. Parks the running record of
// owner, counting one more failed run. Returns 1, or 0 when owner does not hold it.
var parkScript = goredis.NewScript(nowMillis + `
local r = redis.call('HMGET', KEYS[1], 'st', 'pk', 'ow', 'lu', 'at')
if r[1] ~= '1' or r[2] == '1' or r[3] ~= ARGV[1] then return 0 end
if ARGV[2] == '1' and tonumber(r[4]) > now then return 0 end
redis.call('HSET', KEYS[1], 'pk', '1', 'st', '2', 'at', tonumber(r[5]) + 1, 'err', ARGV[3], 'pl', ARGV[4],
  'hd', ARGV[5], 'tp', ARGV[6], 'mid', ARGV[7], 'pa', now)
redis.call('HDEL', KEYS[1], 'lu')
redis.call('PERSIST', KEYS[1])
redis.call('ZADD', KEYS[2], 0, ARGV[8])
return 1
`)

// completeScript: KEYS record; ARGV owner, result (” for none), retention ms. Returns 1 when owner's run is
// now completed (or was completed by owner already), 0 when owner does not hold the record.
var completeScript = goredis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'st', 'pk', 'ow')
if r[3] ~= ARGV[1] or r[2] == '1' then return 0 end
if r[1] == '3' then return 1 end
if r[1] ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'st', '3')
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'res') else redis.call('HSET', KEYS[1], 'res', ARGV[2]) end
redis.call('HDEL', KEYS[1], 'lu', 'pl', 'hd', 'tp', 'mid', 'pa')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// releaseScript: KEYS record; ARGV owner, last error, retention ms. Frees owner's running record after a
// failed run. Returns 1, or 0 when owner does not hold it.
var releaseScript = goredis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'st', 'pk', 'ow', 'at')
if r[1] ~= '1' or r[2] == '1' or r[3] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'st', '2', 'at', tonumber(r[4]) + 1, 'err', ARGV[2])
redis.call('HDEL', KEYS[1], 'lu')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

// takeParkedScript: KEYS record, parked index; ARGV owner, lease ms, retention ms, key. Hands a parked record
// to owner as running. Returns {fingerprint, payload, headers, topic, message id, attempts, last error, parked
// at}, or nil when the record is not parked.
var takeParkedScript = goredis.NewScript(nowMillis + `
local r = redis.call('HMGET', KEYS[1], 'pk', 'fp', 'pl', 'hd', 'tp', 'mid', 'at', 'err', 'pa')
if r[1] ~= '1' then return false end
redis.call('HSET', KEYS[1], 'pk', '0', 'st', '1', 'ow', ARGV[1], 'lu', now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[4])
return {r[2], r[3] or '', r[4] or '', r[5] or '', r[6] or '', tonumber(r[7]), r[8] or '', tonumber(r[9])}
`)

// dropParkedScript: KEYS record, parked index; ARGV retention ms, key. Marks a parked record completed without
// a result. Returns 1, or 0 when it is not parked.
var dropParkedScript = goredis.NewScript(nowMillis + `
if redis.call('HGET', KEYS[1], 'pk') ~= '1' then return 0 end
redis.call('HSET', KEYS[1], 'pk', '0', 'st', '3', 'ra', now)
redis.call('HDEL', KEYS[1], 'res', 'lu', 'pl', 'hd', 'tp', 'mid', 'pa')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
`)
