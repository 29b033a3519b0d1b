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
// # Refused at enqueue, or at once
//
// What the broker can never store is refused before the producer's transaction commits: give [Check] (the
// limits of a broker with default settings) or a [Limits] value's Check to outbox.Config.Check, and Enqueue
// refuses, naming the field, a topic the broker rejects (characters outside [%|a-zA-Z0-9_-], more than 127
// with the namespace, system topics), the property separators 0x01 and 0x02, reserved header names,
// properties longer than the broker stores as this package encodes them, and a payload over MaxMessageSize.
// Publish checks every record against the same Limits and fails one that does not pass with ErrInvalidMessage
// without sending it, so bodies the broker would answer by dropping the connection (20 to 64 MiB) are never
// sent. A broker refusal that no retry can change (CODE 13 MESSAGE_ILLEGAL, CODE 29 for an illegal topic, CODE
// 16 for a system topic) is ErrRefused. Both match relay.ErrPermanent: the relay moves the row to its
// dead-letter table on the first attempt, with the reason as its last error, instead of retrying it
// MaxAttempts times and holding back its sharding key meanwhile. When a batch is refused, its messages are sent
// again one by one, so that only the offending one is refused.
//
// # Mapping of an outbox record to a message
//
//	Topic        → topic (with Namespace: "ns%topic")
//	Payload      → body. A body of 4 KiB or more sent alone is zlib-compressed (as the client would) when that
//	               makes it shorter, and only then, so the broker never sees a body longer than the payload;
//	               consumers see the original bytes. The broker rejects an empty body, so an empty payload is
//	               sent as one zero byte with the property TXBOX_EMPTY_BODY=1, and inbox/rocketmq hands the
//	               handler an empty payload again.
//	Key          → user property TXBOX_KEY, byte for byte; and the KEYS property, the broker's key index, with
//	               '%' written "%25" and ' ' written "%20" (the client joins KEYS with spaces and the broker
//	               splits on them). A key without '%' or ' ' is indexed as is, so operators find a message with
//	               mqadmin queryMsgByKey -t TOPIC -k 12345/payment
//	ID           → user property TXBOX_OUTBOX_ID (decimal)
//	Tag          → tag (consumers can subscribe by tag)
//	ShardingKey  → SHARDING_KEY and the queue: a hash of the sharding key picks the queue (as the client's hash
//	               selector does while every broker is up), so one sharding key always lands in one queue, in
//	               the order the relay publishes (the relay never publishes two rows of one sharding key at
//	               once), also while a broker is lost (see below). Rows without a sharding key go to a random
//	               queue. Changing the topic's queue count moves sharding keys to other queues.
//	DeliverAt    → a RocketMQ 5 timer message (TIMER_DELIVER_MS) when it is still in the future at publish time;
//	               the relay normally holds a row until DeliverAt, so this matters only for rows published early.
//	               The broker bounds the delay (timerMaxDelaySec, 3 days by default).
//	Headers      → user properties of the same names. The client drops properties with empty values, so the
//	               names of empty headers travel in TXBOX_EMPTY_HEADERS (encoded like KEYS) and inbox/rocketmq
//	               restores them. Names RocketMQ or txbox use themselves (KEYS, TAGS, DELAY, UNIQ_KEY, TXBOX_KEY,
//	               ...) are rejected, as is the byte 0x01 or 0x02 anywhere (the client's property separators).
//
// A record that cannot be mapped fails with ErrInvalidMessage, which also matches relay.ErrPermanent: the relay
// moves the row to its dead-letter table at once instead of retrying it MaxAttempts times (see above). The
// mapping is the public wire format of package rmqwire, which inbox/rocketmq reads and other producers and
// consumers can use.
//
// # Batching
//
// The relay keeps many Publish calls in flight (Workers × PublishConcurrency), never two of one sharding key.
// Publish calls whose messages go to the same queue while a send to that queue is under way are coalesced into
// one batch request of up to MaxBatch messages (1 MiB): the broker's per-request cost, not the bytes, limits
// throughput. Nothing waits for a batch to fill — an idle queue sends a lone message at once — and per-key order
// holds, because a sharding key's next message is only published after Publish returned for the previous one and
// its queue is the one the selector picks for it (FNV-1a of the sharding key modulo the queue count). A
// batch succeeds or fails as a whole; all its Publish calls get the same error. Timer messages (DeliverAt) and
// bodies over 64 KiB are sent alone. MaxBatch: 1 turns batching off. On the shared 2-core test machine
// (PostgreSQL, broker and client on one host, 64 sends in flight, 256-byte payloads) the relay drained at
// 0.6–0.85× a bare SendSync loop without batching and at 1.2–2.1× with it (medians of two runs of five
// interleaved rounds; BenchmarkRelayToBroker beside BenchmarkBareSendSync).
//
// # A cluster that loses a broker
//
// When a broker of the cluster dies, the name server drops it from the topic's route, and the client reads the
// new route within 30s. The client's hash selector would then hash every sharding key over the queues that are
// left: a key whose queue was on the lost broker would move to another broker while its earlier messages wait on
// the lost one, and a consumer would see the later ones first. The Publisher's selector keeps the queues of a
// broker that left the route in its mapping instead: a key keeps its queue, and while that queue's broker is out
// of the route Publish fails with ErrQueueUnavailable (and ErrSend, and relay.ErrUnavailable: no attempt is
// counted), so the relay holds the key's rows back, in order, and publishes them once the broker is back.
// Messages without a sharding key go to the brokers that answer: after a failed send to a broker, they avoid it
// for 5 seconds, so they flow through the others from the first failure on, not only after the route changes.
// A Publisher started while a broker is gone maps keys over the brokers it sees, as after a change of the queue
// count. make cluster runs TestBrokerLoss: broker-a SIGKILLed while the relay publishes 5,000 messages.
//
// Because those failures match relay.ErrUnavailable, they count toward the topic's circuit breaker in package
// relay: three in a row (typically once the topic's other rows are drained and only the lost broker's keys are
// left) open it, and it then holds the topic's rows, those for the other brokers too, until a probe succeeds;
// a probe that goes to a broker that answers closes it. In TestBrokerLoss, 500 messages without a key enqueued
// after the kill reached broker-b within 15 s.
//
// # TLS and credentials
//
// Config.TLS makes the client connect to name servers and brokers over TLS (a broker in its default
// "permissive" mode takes TLS and plain connections on the same port). Two properties of rocketmq-client-go
// matter:
//
//   - It does not verify the server's certificate (InsecureSkipVerify): TLS protects the traffic from being read
//     or altered by a passive observer, not from an impostor who can redirect the connection.
//   - The switch is process-global: every client of the process, txbox's or not, dials with the value the most
//     recent client wrote. txbox therefore refuses (ErrInvalidConfig) to create a Publisher or inbox/rocketmq
//     Consumer whose TLS setting differs from that of a txbox client still running, and writes the switch only
//     when it changes. Give every RocketMQ client of a process the same setting; clients created without txbox
//     are not tracked.
//
// Credentials (AccessKey, SecretKey and an optional SecurityToken, for STS) sign requests to an ACL-enabled
// cluster; a SecurityToken without the keys is refused.
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
