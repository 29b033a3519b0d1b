// Package inbox gives a message consumer exactly-once effects on top of an at-least-once broker.
//
// Brokers redeliver: an acknowledgement lost in transit, a consumer that ran past the broker's consume timeout,
// a producer retry, a rebalance. Each delivery carries a business key (see [Key]: "12345/payment"). [Inbox.Process]
// records the key in the same database transaction as the handler's own writes:
//
//	ib, err := inbox.New(db, inbox.Config{Dialect: dialect.MySQL, Consumer: "order-service"})
//	...
//	res, err := ib.Process(ctx, inbox.Delivery{Key: key, Payload: body}, func(ctx context.Context, tx *sqlx.Tx) error {
//		_, err := markPaid.Exec(ctx, tx, dialect.MySQL, orderID, amount) // a dialect.Upsert
//		return err
//	})
//	if err != nil {
//		return consumer.ConsumeRetryLater // nothing was committed: let the broker redeliver
//	}
//	return consumer.ConsumeSuccess // Processed, Duplicate or Parked
//
// A redelivery finds the key and is skipped (Duplicate) without running the handler. A handler that fails rolls
// the key back with everything else, so the next delivery runs it again. A second delivery that arrives while the
// first is still inside its handler waits for the first on the key's row lock (both MySQL/MariaDB and PostgreSQL
// block an insert of an uncommitted primary key) and then skips or runs. The key is stored with the SHA-256 of
// the payload; a redelivery of the key with another payload is reported as [ErrFingerprintMismatch], since it is
// a producer bug, not a duplicate. Keys are scoped by [Config].Consumer and compared byte for byte.
//
// # Idempotent handler writes
//
// The inbox makes the handler's transaction happen once. Write everything the message changes through the tx
// the handler receives; nothing else is covered. Prefer writes that are idempotent anyway (dialect.Upsert:
// INSERT ... ON DUPLICATE KEY UPDATE / ON CONFLICT), because a handler can run more than once for one delivery
// (after a deadlock Process retries in a new transaction) and because a key purged after Retention is new again.
// To produce messages as a consequence (consume → change state → produce, exactly once), enqueue them with
// package outbox in the same tx: Outbox.Enqueue(ctx, tx, msgs...) joins the handler's transaction, so the
// outbox rows commit or roll back with the key.
//
// # Failures, timeouts and poison messages
//
// Handler errors, panics (turned into a [*PanicError]) and timeouts ([Config].HandlerTimeout) roll the
// transaction back and are counted in a short transaction of their own. When a message has failed
// [Config].MaxAttempts times it is parked: copied with payload, headers, attempts and last error to the
// dead-letter table, and its key recorded as parked, so that later deliveries return [Parked] at once (acknowledge
// them). Parking never fails for the message's size: what the database cannot hold whole (on MySQL, a row over
// the server's max_allowed_packet) is cut, and the dead letter records the delivered sizes and the payload's
// SHA-256 ([DeadLetter].Truncated); if the database refuses the row anyway, the message is parked with its sizes
// only. A cut dead letter can be dropped but not replayed. [Inbox.ListDead] lists parked messages, [Inbox.Replay] runs a handler once on one of them (removing it
// and recording its key in the same transaction) and [Inbox.DropDead] discards one. A consumer that knows a
// message can never succeed (a payload that does not decode) parks it at once with [Inbox.Park]. Deadlocks and
// lock timeouts are not failures of the message: Process retries them with jittered backoff.
//
// Map results to the broker explicitly (RocketMQ's zero ConsumeResult acknowledges!): Processed, Duplicate and
// Parked → ConsumeSuccess; any error → ConsumeRetryLater. Errors matching [ErrInvalidDelivery] or
// [ErrFingerprintMismatch] will not go away by redelivery: park the message under a key of its own with
// [Inbox.Park] (as package inbox/rocketmq does), or RocketMQ moves it to its own %DLQ% after its retries.
//
// # Retention
//
// Keys are kept for [Config].Retention (7 days by default; it must outlast the broker's redelivery horizon, about
// 4h46m for RocketMQ's 16 retries). [Inbox.Purge] deletes older keys in small batches of short transactions;
// [Inbox.RunPurger] does so periodically until its ctx ends.
//
// # Schema
//
// The tables (txbox_inbox, txbox_inbox_attempts, txbox_inbox_dead) are created by package migrations; [Inbox.Check]
// tells at start-up whether they exist. All SQL lives in package dialect.
package inbox
