// Package rocketmq is a relay.Publisher on Apache RocketMQ, built on github.com/apache/rocketmq-client-go/v2
// (Remoting protocol: point it at the name server, not at a RocketMQ 5 proxy).
//
//	pub, err := rocketmq.New(rocketmq.Config{NameServers: []string{"127.0.0.1:9876"}})
//	if err != nil { ... }
//	defer pub.Close()
//	r, err := relay.New(db, relay.Config{Dialect: dialect.MySQL, Publisher: pub})
//	...
//	err = r.Run(ctx)
//
// # Only SendOK counts
//
// Publish returns nil only when the broker answered SendOK. rocketmq-client-go returns no error for
// FlushDiskTimeout, FlushSlaveTimeout and SlaveNotAvailable — the broker has the message in memory but has not
// made it durable as configured — so Publish turns those into ErrNotDurable and the relay publishes the row again.
// A timeout or lost answer is ErrSend: the broker may have stored the message. Both cases mean a duplicate can
// reach consumers, which dedupe on the business key (package inbox, inbox/rocketmq). Publish honours its ctx;
// SendTimeout bounds each of the client's attempts and Retries sets how many it makes.
//
// # Mapping of an outbox record to a message
//
//	Topic        → topic (with Namespace: "ns%topic")
//	Payload      → body (the client compresses bodies over 4 KiB; consumers see the original bytes)
//	Key          → user property TXBOX_KEY, byte for byte; and the KEYS property, the broker's key index, with
//	               '%' written "%25" and ' ' written "%20" (the client joins KEYS with spaces and the broker
//	               splits on them). A key without '%' or ' ' is indexed as is, so operators find a message with
//	               mqadmin queryMsgByKey -t TOPIC -k 12345/payment
//	ID           → user property TXBOX_OUTBOX_ID (decimal)
//	Tag          → tag (consumers can subscribe by tag)
//	ShardingKey  → SHARDING_KEY and the queue: a hash of the sharding key picks the queue (the client's hash
//	               selector), so one sharding key always lands in one queue, in the order the relay publishes
//	               (the relay never publishes two rows of one sharding key at once). Rows without a sharding
//	               key go to a random queue. Changing the topic's queue count moves sharding keys to other queues.
//	DeliverAt    → a RocketMQ 5 timer message (TIMER_DELIVER_MS) when it is still in the future at publish time;
//	               the relay normally holds a row until DeliverAt, so this matters only for rows published early.
//	               The broker bounds the delay (timerMaxDelaySec, 3 days by default).
//	Headers      → user properties of the same names. The client drops properties with empty values, so the
//	               names of empty headers travel in TXBOX_EMPTY_HEADERS (encoded like KEYS) and inbox/rocketmq
//	               restores them. Names RocketMQ or txbox use themselves (KEYS, TAGS, DELAY, UNIQ_KEY, TXBOX_KEY,
//	               ...) are rejected, as is the byte 0x01 or 0x02 anywhere (the client's property separators).
//
// A record that cannot be mapped fails with ErrInvalidMessage, which also matches relay.ErrPermanent: the relay
// moves the row to its dead-letter table at once instead of retrying it MaxAttempts times. Property names and
// the key encoding are shared with inbox/rocketmq (see internal/rmqwire).
//
// Messages are sent one at a time with SendSync. Batched sends (one request for many messages) were not added:
// a batch goes to one queue, so it would have to be grouped by sharding key to keep per-key order, and the relay
// already keeps up to Workers×PublishConcurrency sends in flight (see BenchmarkRelayToBroker for figures).
//
// # Clients in one process
//
// rocketmq-client-go shares one connection client between every producer and consumer of a process that has the
// same client IP and instance name. InstanceName is therefore unique per Publisher unless set. Its logging is
// process-global too: New routes it to Config.Logger at Config.ClientLogLevel (Warn by default) for every client
// in the process; the last New wins (see internal/rmqlog).
//
// Shutdown (or Close) stops new publishes, waits for those in flight and then shuts the producer down.
package rocketmq
