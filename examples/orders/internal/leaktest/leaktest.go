package leaktest

import "github.com/txbox/txbox/internal/testdb"

// Options ignore the client's own background goroutines by function name: stats samplers, route and
// heartbeat loops, the rebalance loop, connection readers, long-poll pulls still waiting for the broker, and
// its route cache's janitor (started when the package loads).
//
// The goroutines that run consume callbacks are deliberately not ignored: a handler still running after its
// consumer's Close is a real leak (Close waits for in-flight handlers).
func Options() []testdb.LeakOption {
	const (
		mod      = "github.com/apache/rocketmq-client-go/v2"
		consumer = mod + "/consumer"
		internal = mod + "/internal"
	)
	opts := []testdb.LeakOption{
		testdb.IgnoreAnyFunction(consumer + ".(*pushConsumer).Start.func1.1"),
		testdb.IgnoreAnyFunction(consumer + ".(*pushConsumer).Start.func1.1.1"),
		testdb.IgnoreAnyFunction(consumer + ".(*pushConsumer).Start.func1.2"),
		testdb.IgnoreAnyFunction(consumer + ".(*pushConsumer).Start.func1.3"),
		testdb.IgnoreAnyFunction(consumer + ".(*pushConsumer).pullMessage"),
		testdb.IgnoreAnyFunction(internal + "/remote.(*remotingClient).receiveResponse"),
		testdb.IgnoreAnyFunction(internal + "/remote.(*remotingClient).connect.func1"),
		testdb.IgnoreAnyFunction(internal + "/remote.(*ResponseFuture).waitResponse"),
		testdb.IgnoreTopFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
	}
	for i := 1; i <= 6; i++ {
		opts = append(opts,
			testdb.IgnoreAnyFunction(consumer+".(*statsItemSet).init.func"+itoa(i)),
			testdb.IgnoreAnyFunction(internal+".(*rmqClient).Start.func1."+itoa(i)))
	}
	return opts
}

func itoa(i int) string { return string(rune('0' + i)) }
