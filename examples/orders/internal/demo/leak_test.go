package demo_test

import "github.com/txbox/txbox/internal/testdb"

// leakIgnores are the goroutines rocketmq-client-go leaves behind after Shutdown
// (apache/rocketmq-client-go#1147). The client starts nearly all of them through primitive.WithRecover; the
// rest are the push consumer's pulls (a long poll still waiting for the broker) and its route cache's janitor.
// Everything else — relays, consumers' handlers, HTTP servers, database pools — must be gone.
var leakIgnores = []testdb.LeakOption{
	testdb.IgnoreAnyFunction("github.com/apache/rocketmq-client-go/v2/primitive.WithRecover"),
	testdb.IgnoreAnyFunction("github.com/apache/rocketmq-client-go/v2/consumer.(*pushConsumer).Start.func1.1.1"),
	testdb.IgnoreAnyFunction("github.com/apache/rocketmq-client-go/v2/consumer.(*pushConsumer).Start.func1.2"),
	testdb.IgnoreTopFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
}
