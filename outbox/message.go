package outbox

import "time"

// Message is what a producer enqueues.
type Message struct {
	Topic       string            // required, at most dialect.MaxTopicBytes
	Key         string            // required, stable business key, e.g. "12345/order-created" (dialect.CheckKey)
	Tag         string            // optional (RocketMQ tag), at most dialect.MaxTagBytes
	ShardingKey string            // optional: messages with the same sharding key are published in enqueue order
	Payload     []byte            // at most Config.MaxPayloadBytes
	Headers     map[string]string // optional; see Config.MaxHeaderBytes
	DeliverAt   time.Time         // optional: not published before this instant (zero: at once)
}

// Record is an outbox row as a relay hands it to a Publisher.
type Record struct {
	// ID is the row's id: unique in the table, increasing in insertion order. A requeued dead letter gets a
	// new ID.
	ID int64
	Message
	// Attempt is 1 on the first publish attempt and grows by one after each failed one.
	Attempt int
	// CreatedAt is when the row was enqueued (the enqueuing transaction's time on PostgreSQL).
	CreatedAt time.Time
}

// DeadLetter is a message that failed Relay's MaxAttempts times (or permanently) and was parked.
type DeadLetter struct {
	Record    // Attempt is the number of failed attempts
	LastError string
	DeadAt    time.Time
}
