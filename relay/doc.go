// Package relay publishes committed outbox rows (package outbox) to a broker through a Publisher and removes
// each row once the Publisher has confirmed it.
//
//	r, err := relay.New(db, relay.Config{Dialect: dialect.Postgres, Publisher: pub})
//	...
//	err = r.Run(ctx) // until ctx ends
//
// # How a batch works
//
// A relay runs Config.Workers batch loops, each on a database connection of its own. A batch:
//
//  1. Finds the keyed partitions (outbox.PartitionOf) that hold rows, with one index dive per partition, and
//     tries to take, without waiting, the session-level advisory locks (pg_try_advisory_lock, GET_LOCK) of up to
//     64/Workers of them; where the slice starts rotates from batch to batch. A worker that found no keyed
//     rows skips this look for 5ms while its batches keep claiming unkeyed rows (one round trip less per batch
//     of an unkeyed backlog); after an idle pass or a wake-up it always looks.
//  2. Claims rows under a lease, in short transactions that commit before anything is published: the due rows of
//     the partitions it locked, per partition in id order, and due rows without a sharding key, locked with
//     SELECT ... FOR UPDATE SKIP LOCKED from the last id this worker claimed (so MariaDB does not step over the
//     delete-marked rows of drained batches; the scan restarts from the lowest id whenever a pass comes up short
//     and at least every RescanInterval, so rows that commit out of id order are found). The two kinds take
//     turns at the batch's room: BatchSize rows, and MaxBatchBytes of payload in id order (always at least one
//     row). Each claimed row gets the batch's random token as its claim_token and the database's now + Lease as
//     its lease end: in available_at for a keyed row (it is not due for any other claim, and the index of rows
//     that are not due finds it for the hold-back), in lease_until for a row without a sharding key (claims skip
//     rows whose lease has not ended; no index covers the column, so the update is cheap: HOT on PostgreSQL). A
//     keyed row is left out while it is held back: an earlier row of its sharding key is not due (in backoff,
//     delayed by DeliverAt, or held for a broker outage), or any row of its key, earlier or later, is leased.
//  3. Publishes concurrently (up to PublishConcurrency): rows without a sharding key independently, the rows of
//     one sharding key one after another in id order; once a row of a key fails, the key's later rows in the
//     batch are not attempted. Every Publish call runs under the batch's deadline: the earlier of PublishTimeout
//     after publishing starts and the claim's start + Lease - LeaseMargin, the claim's start being the relay's
//     monotonic clock read before the claim was sent. Meanwhile a goroutine renews the lease every Lease/3 on
//     the worker's connection, which is idle while the batch publishes; a renewal moves the deadline to its own
//     send time + Lease - LeaseMargin, and only when its answer arrives before the current deadline. A renewal
//     that fails or comes late changes nothing: a batch that lost its database stops by its last confirmed
//     lease end.
//  4. Finishes in one transaction whose statements touch only the rows whose claim_token is still the batch's:
//     it deletes the confirmed rows (or, with Config.Retention, moves them to the published table); records
//     failures (attempts+1, last_error, available_at = now + jittered exponential backoff); moves rows that
//     reached MaxAttempts or failed with ErrPermanent to the dead-letter table; releases the rows it did not
//     attempt (due now, nothing counted); holds the rows of a topic whose broker is unavailable (see Broker
//     outages). A finish that fails with the database or the connection is tried again on fresh connections,
//     with a growing wait, until two leases have passed since the claim. Then the partition locks are released.
//
// The partition locks are held from before the claim until after the finish. Correctness does not need them
// while the batch publishes: the committed lease keeps every other claim off the batch's rows, and the hold-back
// off the other rows of their sharding keys. They serialize the claims of a partition (two claims running at
// once could each see a key's earlier row unleased and take different rows of the key), and holding them to the
// end spares the other workers from re-reading a partition whose backlog the batch's leases hold back: a worker
// that cannot take a partition's lock skips the partition. A lost connection frees its locks at once, and the
// leases take over.
//
// On MySQL/MariaDB the outbox is clustered on (part, id), so that the unkeyed claim and each keyed partition are
// primary-key range scans that never step over another partition's rows (MariaDB keeps the locks of rows a
// locking scan stepped over, even in READ COMMITTED, and then waits for them despite SKIP LOCKED: deadlocks).
// Every statement that reaches claimed rows joins a JSON_TABLE of their (part, id) with STRAIGHT_JOIN and FORCE
// INDEX (PRIMARY), forcing primary-key lookups: a plain "DELETE ... WHERE id IN (...)" is planned as a full scan
// when the statistics say the table is small, and that scan deadlocks concurrent relays.
//
// # Guarantees
//
// They rest on three assumptions. The database's clock and the relay's monotonic clock advance at the same rate
// to within LeaseMargin/Lease (20%) over a lease, and the database's clock is not stepped forward while a lease
// runs (slew it, as NTP does by default, rather than step it). A Publisher returns promptly, well within
// LeaseMargin, once its ctx ends. And every relay on the table is of this version or later (migration 00004).
//
// No loss: every committed row is published at least once. A row leaves the outbox only in the finish that
// records its confirmed publish (or its move to the dead-letter table). A relay that stops (ctx ends) finishes
// its in-flight batches first. A relay that dies (crash, SIGKILL), loses its database or cannot finish leaves
// its rows leased: another relay (or the next run) claims them once the lease ends, so Lease bounds the
// takeover. Rows of rolled-back transactions are never visible, so never published.
//
// No concurrent double publishing: a claim takes no row whose lease has not ended. The batch that holds the
// lease stops publishing LeaseMargin before the lease ends as its own clock measures it; its clock was read
// before the claim was sent and the database computed the lease end after receiving it, so the batch has
// stopped before any other claim can take the row, whatever became of its connection. No row is in two Publish
// calls at once, across workers, relays and processes.
//
// What remains is duplicates, never concurrent, each bounded by the batch: a row is published again after a lost
// confirm (the broker accepted it, the Publisher returned an error), or after its batch could not record the
// confirm (the finish kept failing, the relay died, the lease ended first); then it is published again once its
// lease has ended. The consumers' inboxes absorb them (package inbox).
//
// How long a row stays claimed: until its batch finishes, at most PublishTimeout plus the final statements; if
// the batch cannot finish, until Lease after its last confirmed renewal.
//
// Order per sharding key: rows with the same ShardingKey are published in id order, one at a time, also across
// relay processes: a batch publishes a key's rows one after another, and while a row of the key is leased no
// other claim takes any row of that key. A later row is never published before an earlier one has been
// confirmed or dead-lettered. Ids follow insertion order; for rows inserted by transactions that run
// concurrently, the order is the order of their ids among the rows committed when a relay reads them (a row of
// key k that commits after a later-id row of k was published is published after it, never beside it). A failing
// row holds back only its own sharding key: other keys, including keys in the same partition, continue. A row
// delayed with DeliverAt, or held for its topic's outage, holds back the later rows of its key the same way.
// Moving a row to the dead-letter table unblocks its key; a requeued dead letter goes behind the rows of its key
// already queued. Rows without a sharding key are published in parallel and in no particular order.
//
// Parallelism: keyed rows spread over 64 partitions, so at most 64 batches publish keyed rows at once across
// all relays (a batch that lost its connection, and so its locks, may still be publishing under its lease
// beside them); within a batch every sharding key publishes in parallel.
//
// # Broker outages
//
// A Publisher wraps ErrUnavailable into the errors that say the broker or the route to the topic could not be
// reached (relay/rocketmq does). Such a failure counts no attempt and adds no backoff: the row is released
// untouched. After three in a row for a topic, the topic's circuit breaker opens: one Warn line, Config.OnBreaker,
// and the relay stops publishing the topic. As batches come to the topic's rows it holds them (marked, and not
// due for five minutes), which holds back the later rows of their sharding keys: order is kept, and no row can
// reach the dead-letter table because of the outage. Every ProbeInterval one publish to the topic goes
// through as a probe (Run makes one held row due for it); the first that succeeds closes the breaker (one Info
// line with the outage's length, Config.OnBreaker), makes every held row of the topic due at once and wakes the
// workers (a batch that finds several rows of the topic due at once also probes at once: another relay's breaker
// closed, or new messages came). A relay that dies with a breaker open leaves its held rows to wait at most five
// minutes.
//
// # Memory and logs
//
// A batch holds at most MaxBatchBytes of payloads (one larger row goes alone), so a relay holds about Workers ×
// MaxBatchBytes whatever the payload sizes. Failures are logged at Warn once per batch (how many failed, the
// first error, a few keys) and at most about once a second per kind, each failed row at Debug.
//
// # Wake-ups
//
// On PostgreSQL, outbox.Enqueue sends a NOTIFY that PostgreSQL delivers when the producer commits, at most one
// per outbox.Config.NotifyInterval (10ms) from one Outbox. A relay whose *sqlx.DB uses pgx's database/sql
// driver ("pgx") keeps one more connection LISTENing and wakes every worker on a notification. While messages
// flow (a worker found rows within the last MaxPollInterval) workers poll every MinPollInterval, which finds
// the messages that came without a notification; a quiet relay's workers only poll every MaxPollInterval, for
// rows whose DeliverAt or backoff has passed, until a notification wakes them. lib/pq delivers notifications only while a query runs, so with lib/pq (and on MySQL)
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
