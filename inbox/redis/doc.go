// Package redis keeps the idempotency records of inbox.Effects in Redis (github.com/redis/go-redis/v9):
//
//	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
//	st, err := redis.New(client, redis.Config{})
//	...
//	fx, err := inbox.NewEffects(st, inbox.EffectsConfig{Consumer: "payment-service"})
//
// Each record is a hash, and every transition (begin, complete, release, park, replay, drop) is one Lua script,
// so it is atomic on the server; lease ends are read from the server's clock (TIME), never the clients'.
// Records expire Retention after their last change (PEXPIRE), so Effects.Purge has nothing to do; parked records
// do not expire until they are replayed or dropped, and each consumer has an index of them (a sorted set) for
// Effects.ListDead.
//
// What the records guarantee is what Redis keeps: a record written to a primary that fails before a replica
// or the append-only file has it is lost, and the effect can run again (with the same idempotency key, which is
// what the downstream system then deduplicates on). Run Redis with appendonly yes and appendfsync everysec or
// always when that matters, or keep the records in the SQL store (inbox.SQLEffectStore). Redis Cluster works: a
// consumer's keys share one hash slot (see Config.Prefix).
package redis
