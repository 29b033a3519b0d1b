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
// [Inbox.RunPurger] does so periodically until its ctx ends. That is the unpartitioned layout, where keys live in
// <prefix>_inbox and a purge costs in proportion to the keys it deletes (at 1,000 msg/s, 86 million a day).
//
// # Partitioned retention
//
// In the partitioned layout (a new installation migrated with migrations.WithPartitioned, or an existing one
// converted with `txbox partitions convert`; the layout is read from <prefix>_partitions, so code is the same
// for both) keys live in <prefix>_inbox_keys, partitioned by bucket: floor(seconds since the epoch / P) of the
// database's clock, P the partition period (set once per table, a seventh of the first Retention it sees: a
// partition a day for 7 days). Retention is paid by dropping whole partitions, at a cost that does not depend
// on how many keys they hold: Purge (and `txbox partitions maintain`) makes the partitions of the next periods
// ahead of time and drops every partition whose keys are all older than the table's retention, which is the
// longest Retention of the consumers that share the table (a consumer's own Retention is a lower bound). Keys of
// parked messages are copied into the current partition before theirs is dropped: they are never lost.
//
// A claim records its key in the bucket of its instant t and, when t is within the claim window W
// ([Config].ClaimWindow, more than HandlerTimeout) of the next boundary, also in the next bucket: in every
// bucket from b(t) to b(t+W). Primary keys are per bucket (consumer, key, bucket). In the same statement, one
// round trip, the claim looks the key up in every bucket from b(t-R) to b(t+W), R the table's retention: one
// index probe per live partition (PostgreSQL: a CTE; MySQL/MariaDB: the stored procedure <prefix>_inbox_keys_claim,
// whose plain SELECT takes no locks; the same check as INSERT ... SELECT ... WHERE NOT EXISTS took shared
// next-key locks under REPEATABLE READ, and a claim of a neighbouring key waited 2.5 s for the first one's
// transaction). Instants are the database's, read once per statement (statement_timestamp(), UTC_TIMESTAMP(6)).
// Why two deliveries A and B of one key, claimed at instants a ≤ b, still make one effect:
//
//   - Premise: a claiming transaction ends, committed or rolled back, within W of its claim. Process rolls it
//     back at HandlerTimeout whatever the handler does, and W exceeds HandlerTimeout by a margin (one minute by
//     default) for a commit sent just before the deadline; New refuses a ClaimWindow that does not exceed
//     HandlerTimeout.
//   - A committed before B's claim statement began: B's look-up (a snapshot taken after A's commit) finds A's row
//     in b(a) ≥ b(b-R), unless b-a exceeds the retention, when the key is new again as in the unpartitioned layout.
//   - A rolled back: nothing of it is recorded; B goes on as the first delivery.
//   - A still open when B claims: then b < a+W, so b(b) is one of A's buckets b(a)..b(a+W). B's insert of
//     (key, b(b)) waits on A's uncommitted row, as in the unpartitioned layout, and then finds it committed
//     (Duplicate: PostgreSQL's ON CONFLICT DO NOTHING inserts fewer rows than buckets, MySQL fails with a
//     duplicate key, and a second statement reads the key) or rolled back (B runs). This is the case of two
//     deliveries straddling a boundary: A within W of it recorded the next bucket too, where B meets it.
//   - The catch-all partition (PostgreSQL DEFAULT, MySQL MAXVALUE) takes the keys of buckets whose partition is
//     missing (no purger ran for days): Process never fails for it. It is part of the table, probed by every
//     claim whose range it covers, with the same primary key; a warning in the log (when an Inbox sees that
//     the next period has no partition), txbox_partition_catchall_rows and txbox_partition_ahead_seconds
//     (metrics.RegisterPartitions) and `txbox partitions status` say so. Making a partition moves its keys out of
//     the catch-all in one transaction that holds the table exclusively (PostgreSQL; on MySQL one ALTER TABLE):
//     a claim sees them before or after, never neither (holding the table matters: attaching a partition alone
//     lets a claim planned before run after, looking in neither place). Keys whose bucket still receives claims
//     stay in the catch-all until the bucket has passed.
//   - A drop removes a partition only when its last bucket started more than R ago, that is below b(t-R) of any
//     claim from then on: no claim looks there, and no claim writes there (its buckets start at b(now)). The
//     application servers' clocks take no part: a skewed one changes neither a bucket nor a drop (tested with a
//     clock a month off). A drop takes an exclusive lock of the table (metadata lock on MySQL) for a moment,
//     waiting at most 2 s for transactions in flight, which wait behind it meanwhile; one that cannot get it is
//     retried at the next run.
//
// What it does not cover: the premise. A transaction that outlives W after its claim without Process noticing
// (the process frozen or cut off with the transaction open on the server) no longer meets a delivery claimed
// after the next boundary; keep W well above HandlerTimeout. The database's clock stepping back (not slewed)
// across a boundary while a delivery is in flight can do the same.
//
// Costs, measured on the test services (2 cores, shared): the look-up is one index probe per live partition
// (8 for a 7-day retention), and Process ran at 0.55–0.75× of its unpartitioned throughput (BenchmarkProcess,
// see the README); the partitioned layout is therefore opt-in. A key recorded near a boundary takes two rows
// (a W/P share of the keys: 0.14% with the defaults).
//
// Converting an installation (`txbox partitions convert inbox start`, then `finish`) loses no dedup history:
// while it converts, every claim records its key in <prefix>_inbox first, so processes that do not know the
// partitioned layout yet still meet the others on its primary key, and in <prefix>_inbox_keys too. Finish is
// refused until every process has read the new mode (30 s) and ended the claims made before (the settle time,
// with W), and while keys were recorded the old way lately. From then on claims record keys in the partitioned
// table only and look them up in <prefix>_inbox too, read-only, until Purge has deleted its expired keys.
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
// The tables (txbox_inbox or txbox_inbox_keys, txbox_inbox_attempts, txbox_inbox_dead, txbox_partitions, and
// txbox_effects for Effects on SQL) are created by package migrations; [Inbox.Check] and [Effects.Check] tell at start-up whether they exist. All SQL lives in package dialect.
package inbox
