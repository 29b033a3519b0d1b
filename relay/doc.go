// Package relay publishes committed outbox rows (package outbox) to a broker through a Publisher and removes
// each row once the Publisher has confirmed it.
//
//	r, err := relay.New(db, relay.Config{Dialect: dialect.Postgres, Publisher: pub})
//	...
//	err = r.Run(ctx) // until ctx ends
//
// # How a batch works
//
// A relay runs Config.Workers batch loops, each on a database connection of its own. One batch is one
// transaction on that connection:
//
//  1. Find the keyed partitions (outbox.PartitionOf) that hold rows, with one index dive per partition, and
//     try to take, without waiting, the session-level advisory locks (pg_try_advisory_lock, GET_LOCK) of up to
//     64/Workers of them; where the slice starts rotates from batch to batch. A worker that found no keyed
//     rows skips this look for 5ms while its batches keep claiming unkeyed rows (one round trip less per batch
//     of an unkeyed backlog); after an idle pass or a wake-up it always looks.
//  2. Read the due rows of the partitions it got, per partition in id order, leaving out every row that has an
//     earlier row of its sharding key that is not due (in backoff or delayed). The partition lock is the claim:
//     no other relay reads those partitions while it is held.
//  3. Claim due rows without a sharding key with SELECT ... ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED,
//     starting after the last id this worker claimed (so MariaDB does not step over the delete-marked rows of
//     drained batches); the scan restarts from the lowest id whenever a pass comes up short and at least every
//     RescanInterval, so rows that commit out of id order are found.
//  4. Publish concurrently (up to PublishConcurrency): rows without a sharding key independently, the rows of
//     one sharding key one after another in id order; once a row of a key fails, the key's later rows in the
//     batch are not attempted.
//  5. In the same transaction: delete the confirmed rows (or, with Config.Retention, move them to the published
//     table); record failures (attempts+1, last_error,
//     available_at = now + jittered exponential backoff); move rows that reached MaxAttempts (or failed with
//     ErrPermanent) to the dead-letter table. Commit, then release the partition locks.
//
// On MySQL/MariaDB the outbox is clustered on (part, id), so that the unkeyed claim and each keyed partition
// are primary-key range scans that never step over another partition's rows (MariaDB keeps the locks of rows a
// locking scan stepped over, even in READ COMMITTED, and then waits for them despite SKIP LOCKED: deadlocks).
// Every statement that touches claimed rows joins a JSON_TABLE of their (part, id) with STRAIGHT_JOIN, forcing
// primary-key lookups: a plain "DELETE ... WHERE id IN (...)" is planned as a full scan when the statistics say
// the table is small, and that scan deadlocks concurrent relays.
//
// # Guarantees
//
// No loss: every committed row is published at least once. A row is deleted only in the transaction that
// records its confirmed publish. A relay that stops (ctx ends) finishes its in-flight batches first; a relay
// that dies (crash, SIGKILL, lost connection) loses its connection, and the database rolls back its batch and
// releases its row and partition locks at once, so another relay (or the next run) publishes the rows again.
// Rows of rolled-back transactions are never visible, so never published.
//
// No concurrent double publishing: while a batch runs, its unkeyed rows are row-locked and its keyed rows are
// covered by the partition locks, both held by the batch's connection; no other relay or worker can claim
// them. A row is published more than once only after a lost confirm (the broker accepted it, the Publisher
// returned an error), a batch whose final transaction failed, or a relay that died or lost its database
// connection mid-batch; in each case at most that batch is published again.
//
// How long a row stays claimed: a batch holds its rows for at most PublishTimeout (all Publish calls of the
// batch share that deadline) plus its statements; a dead connection frees them at once.
//
// Order per sharding key: rows with the same ShardingKey are published in id order, one at a time, by
// whichever relay holds their partition, also across relay processes; a later row is never published before
// an earlier one has been confirmed or dead-lettered. Ids follow insertion order; for rows inserted by
// transactions that run concurrently, the order is the order of their ids among the rows committed when the
// relay reads them (a row of key k that commits after a later-id row of k was published is published after
// it). A failing row holds back only its own sharding key: other keys, including keys in the same partition,
// continue. A row delayed with DeliverAt holds back the later rows of its key the same way. Moving a row to the
// dead-letter table unblocks its key; a requeued dead letter goes behind the rows of its key already queued.
// Rows without a sharding key are published in parallel and in no particular order.
//
// Parallelism: keyed rows spread over 64 partitions, so at most 64 batches publish keyed rows at once across
// all relays; within a batch every sharding key publishes in parallel.
//
// # Wake-ups
//
// On PostgreSQL, outbox.Enqueue sends a NOTIFY that PostgreSQL delivers when the producer commits. A relay
// whose *sqlx.DB uses pgx's database/sql driver ("pgx") keeps one more connection LISTENing and wakes every
// worker on a notification; idle workers then only poll every MaxPollInterval, for rows whose DeliverAt or
// backoff has passed. lib/pq delivers notifications only while a query runs, so with lib/pq (and on MySQL)
// relays poll adaptively: immediately again after a pass that found rows, after MinPollInterval while messages
// flow (any worker found rows within the last MaxPollInterval), and with a wait doubling up to MaxPollInterval
// once the outbox has been quiet that long. DeliverAt delays a row: it is not published before that instant.
//
// # Keeping published rows
//
// With Config.Retention set, confirmed rows are moved to the published table (<prefix>_outbox_published) with
// the time they were published, in the batch's transaction, rather than deleted; Run deletes them once they are
// older than Retention (Relay.PurgePublished does it on demand). They live in a table of their own so that the
// outbox stays small and claims never step over published rows.
//
// The published table can be partitioned by publishing time (a new installation migrated with
// migrations.WithPartitioned, or `txbox partitions convert published`): the relay's statements are the same
// (published_at is the database's clock, and the database routes each row to its partition), and the purge drops
// whole the partitions whose rows were all published longer ago than the table's retention, the longest Retention
// of the relays that share it, instead of deleting rows: its cost does not grow with the rows kept. It makes the
// partitions of the next periods at the same time; rows published while a partition is missing go to a
// catch-all partition and are moved out later (see package inbox, "Partitioned retention", for the mechanics they
// share). Nothing reads published rows for correctness, so the table converts in one step: a partitioned table
// takes its name at once and the kept rows are copied over.
//
// # Dead letters
//
// Rows that failed MaxAttempts times move, with payload, headers and last error, to the dead-letter table.
// List, requeue and drop them with outbox.Outbox.DeadLetters, Requeue and Drop.
package relay
