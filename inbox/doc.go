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
// # Batches
//
// [Inbox.ProcessBatch] handles several deliveries in one transaction with one commit, which on durable
// settings (a commit waits for the disk) is what a consumer's throughput is made of. Each delivery's key and
// its handler's writes sit under a savepoint: a handler that fails or panics rolls back only its own writes and
// key, and only its delivery comes back [Failed]; duplicates are skipped as with Process. Keys are claimed in
// byte order, so that concurrent batches of overlapping keys wait for each other rather than deadlock; a
// deadlock or lock timeout reruns the whole batch. Every delivery holds its key until the batch commits.
//
// # Retention
//
// Keys are kept for [Config].Retention (7 days by default; it must outlast the broker's redelivery horizon, about
// 4h46m for RocketMQ's 16 retries). [Inbox.Purge] deletes older keys in small batches of short transactions;
// [Inbox.RunPurger] does so periodically until its ctx ends.
//
// # Effects outside the database
//
// Process makes effects that are rows in the inbox's database happen once. An effect elsewhere — a payment
// gateway charged, an email sent, another service's API called — cannot join that transaction. For those,
// [Effects] keeps a two-phase idempotency record per (consumer, key) in an [EffectStore]: the installation's
// <prefix>_effects table ([SQLEffectStore], MySQL/MariaDB or PostgreSQL) or Redis (package inbox/redis):
//
//	st, err := inbox.NewSQLEffectStore(db, inbox.SQLEffectStoreConfig{Dialect: dialect.Postgres})
//	fx, err := inbox.NewEffects(st, inbox.EffectsConfig{Consumer: "payment-service", Lease: 30 * time.Second})
//	...
//	res, err := fx.Run(ctx, d, func(ctx context.Context, c *inbox.Claim) ([]byte, error) {
//		charge, err := gateway.Charge(ctx, amount, c.Key) // c.Key is the gateway's Idempotency-Key
//		return []byte(charge.ID), err                      // saved; duplicates find it in Claim.Result
//	})
//	if err != nil {
//		return consumer.ConsumeRetryLater // ErrBusy included: another run holds the key
//	}
//	return consumer.ConsumeSuccess // Processed, Duplicate or Parked
//
// [Effects.Begin] atomically records a new key as running under a lease (a random owner token and a lease end
// read from the store's clock), or reports what earlier runs left: completed (Duplicate, with the saved result),
// running under a live lease ([ErrBusy]: deliver later), parked, or recorded with another payload
// ([ErrFingerprintMismatch]). A key whose last run failed is run again; a key whose lease expired is taken over
// (Claim.TakenOver), the expired run counted as a failed attempt. The caller then runs the effect with
// Claim.Key as the downstream idempotency key and calls [Claim.Complete] with a small result (at most
// MaxResultBytes) or [Claim.Release] with the error. Both are fenced by the owner token: once a lease was
// taken over, the old run's Complete and Release change nothing and return [ErrLeaseLost]. After MaxAttempts
// failed runs (errors, panics, expired leases) the key is parked with its delivery: [Effects.ListDead],
// [Effects.Replay] and [Effects.DropDead] handle it as for the inbox's dead letters, and [Effects.Park] parks a
// delivery at once. Records are kept for Retention after their key was first begun: SQL stores delete older
// ones with [Effects.Purge] (in batches), Redis lets them expire; parked records stay until settled. [Effects.Run]
// does Begin, the effect, and Complete or Release in one call and returns what Process would (package
// inbox/rocketmq has a consumer built on it, NewEffects).
//
// What the records guarantee:
//
//   - At most one run holds a key at a time: concurrent deliveries get ErrBusy and run nothing.
//   - A completed key is not run again (until Retention passes): later deliveries are Duplicate.
//   - A run whose lease was taken over cannot complete, release or park the key.
//   - A failed run is counted and the key freed for the next delivery; poison is parked, not looped.
//
// What they cannot guarantee: the effect and its record live in two systems, and no protocol makes a call to
// one and a write to the other atomic. The downstream system therefore sees a key more than once — always the
// same idempotency key — when a run acted and its record did not say so:
//
//   - the consumer died (or lost the store) after acting and before Complete: once its lease expires, the next
//     delivery takes the key over and acts again;
//   - a run acted but outlived its lease, and another delivery took the key over meanwhile: both acted (the
//     late run's Complete returns ErrLeaseLost);
//   - the downstream system acted but the run saw an error (a lost response, a timeout): the run is released
//     and the next delivery acts again;
//   - the record itself was lost: purged after Retention, or written to a Redis primary that failed before
//     persisting or replicating it (see package inbox/redis).
//
// A downstream system that deduplicates by idempotency key, as payment gateways do, applies those repeated
// calls once: the effect then happens once. One that does not applies each of them: a customer charged twice,
// an email sent twice. Keep the lease longer than the effect ever takes, so that the second case does not
// arise in normal operation, and short enough that recovery after a crash (which waits the lease out) is
// quick. To record an effect's outcome in the database exactly once as well, call Run inside a Process
// handler and write the result through its tx: a handler retried after a rollback finds the effect completed
// and its saved result, instead of acting again (examples/orders' payment service does this).
//
// # Schema
//
// The tables (txbox_inbox, txbox_inbox_attempts, txbox_inbox_dead, and txbox_effects for Effects on SQL) are
// created by package migrations; [Inbox.Check] and [Effects.Check] tell at start-up whether they exist. All SQL lives in package dialect.
package inbox
