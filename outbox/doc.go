// Package outbox writes messages into txbox's outbox table inside the caller's own database transaction, so a
// message is sent if and only if the business change it belongs to commits. A relay (package relay) publishes
// committed rows to the broker afterwards.
//
//	ob, err := outbox.New(outbox.Config{Dialect: dialect.Postgres})
//	...
//	tx, _ := db.BeginTx(ctx, nil)
//	// ... business writes on tx ...
//	err = ob.Enqueue(ctx, tx, outbox.Message{Topic: "orders", Key: "12345/order-created", Payload: body})
//	...
//	err = tx.Commit()
//
// Enqueue validates every message before it writes anything (see [ErrInvalidMessage]) and writes all of them
// in one statement. On PostgreSQL the same statement sends a NOTIFY, which PostgreSQL delivers only when the
// transaction commits, so relays wake at once and never for a rollback.
//
// Messages with the same ShardingKey are published in enqueue order (see package relay for the exact
// guarantee). Each row stores the partition of its sharding key, [PartitionOf], which is how relays divide
// the keyed rows between them.
//
// Dead letters (rows that failed MaxAttempts times) are listed, requeued and dropped with
// [Outbox.DeadLetters], [Outbox.Requeue] and [Outbox.Drop].
package outbox
