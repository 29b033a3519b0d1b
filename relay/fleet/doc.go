// Package fleet runs relays over many databases: relay processes, each with a Fleet on the same set of databases
// (both dialects may be mixed), share the set without a coordinator. Each database is drained by the relay that
// holds its drain lease, the relays spread the databases evenly among themselves, a relay that dies leaves its
// databases to the others, and the set changes without a restart (Update).
//
//	f, err := fleet.New(fleet.Config{Relay: relay.Config{Publisher: pub, Workers: 2}})
//	err = f.Update(ctx, []fleet.Database{
//		{Name: "orders", Dialect: dialect.MySQL, DB: ordersDB},
//		{Name: "payments", Dialect: dialect.Postgres, DB: paymentsDB},
//	})
//	err = f.Run(ctx) // until ctx ends
//
// # The drain lease
//
// A database's drain lease is a session-level lock of the database server, one per installation (database, or
// PostgreSQL schema, and prefix): pg_try_advisory_lock on PostgreSQL, GET_LOCK on MySQL/MariaDB, taken without
// waiting on a connection the relay keeps for it. A relay runs a relay.Relay on a database only while it holds
// the lease: it takes the lease first, then starts the relay; to give the database up it stops the relay, waits
// until its Run has returned (its batches in flight finished), and only then releases the lease. Every
// HeartbeatInterval it checks on that connection that its session still holds the lock; when the check fails or
// takes longer than Timeout, it stops the relay and counts the database down.
//
// Why two relays never drain one database at once: the lock admits one session, and a relay starts draining
// only after its own session got the lock and stops before releasing it. The lock can end without the relay's
// consent only with its session (a crash, a cut connection, a server restart, an administrator's kill). The
// relay that lost it stops claiming rows once its next heartbeat fails, so within HeartbeatInterval + Timeout,
// and until then a new holder may drain beside it; but their batches still never share a row: the relay's own
// row locks and partition locks (and, with the leases of issue 12, each claimed row's lease, which the new holder
// cannot claim before it ends and the old batch stops publishing before it ends) keep every row in one Publish
// at a time (see package relay, "Guarantees"). The drain lease spreads the work; the relay's own claims keep it
// safe.
//
// # Sharing without a coordinator
//
// Every relay writes a heartbeat row (<prefix>_relays: its ID, the database's clock, whether it holds the
// database, how many databases it holds and may hold) into each database it holds, every HeartbeatInterval, and
// into each database it looks at, every ProbeInterval. It reads the rows back each time and counts the relays
// whose heartbeat is younger than RelayTTL in any of its databases: n live relays, itself included. With m usable
// databases (those of its set that are not down) its fair share is ⌊m/n⌋ or ⌈m/n⌉:
//
//   - It takes a free database (one whose lease nobody holds) while it holds fewer than ⌊m/n⌋, and up to ⌈m/n⌉
//     while no other live relay with room holds fewer than ⌊m/n⌋ (a database given up to even out the fleet goes
//     to the relay that holds the fewest, not to the first that looks). A database that has stayed free for
//     TakeoverGrace is taken by any relay below its MaxHeld, share or not: a relay that died still counts as live
//     until its heartbeats age out, and its databases should not wait for that.
//   - It gives databases up only when it holds the most of all live relays (ties: the greatest ID) and another
//     relay with room holds at least two fewer; then half the difference, the most recently taken first.
//
// Hysteresis keeps this from flapping: a spread of one is the even share itself (⌊m/n⌋ and ⌈m/n⌉), so a balanced
// fleet moves nothing; only one relay, the top holder, gives up, and by half the gap, so the gap closes without
// overshooting; after a take or a release a relay waits 2 × ProbeInterval + the longer interval before it gives
// up again, so that the others' heartbeats say what they took; a relay does not take back for RelayTTL a
// database it gave up; and relays starting together only look during their first ProbeInterval, so that they
// see each other before they take. A relay at MaxHeld takes nothing, and the fleet then drains at most the sum of
// its relays' caps.
//
// # Takeover
//
// A relay that is SIGKILLed or crashes loses its connections; the kernel resets them, the database server ends
// the sessions, and the locks are free at once. The other relays find them free at their next look (within
// ProbeInterval) and take them within their share, or after TakeoverGrace beyond it: a dead relay's databases are
// drained again within about ProbeInterval + TakeoverGrace (3s by default; see `make bench-fleet` for measured
// times), and the fleet evens out once its heartbeats are older than RelayTTL. Its batches in flight were rolled
// back with its sessions (with the leases of issue 12: are taken over once their row leases end), so their rows
// are published again: the only duplicates. A relay that stops cleanly (ctx ends) finishes its batches, deletes
// its heartbeat rows from the databases it held and releases their leases; the others take them the same way.
// A relay that vanishes without a TCP reset reaching the server (power loss, a cut network) holds its leases until
// the server drops its idle sessions: the session that holds a lease is set to end after LeaseIdleTimeout (30s)
// idle (MySQL wait_timeout, PostgreSQL 14+ idle_session_timeout; on PostgreSQL 13 set tcp_keepalives_* on the
// server), and a live relay uses it every HeartbeatInterval.
//
// # A database down
//
// A database that cannot be reached (or used: unmigrated, a relay that stops on its own) at start or mid-run
// stalls only itself. Its looks fail within Timeout; it is down (Status, OnChange) with the error, left out of m
// (the others are shared as if it were not there), and looked at again after ProbeInterval, doubling up to
// MaxRetryInterval. A held database whose heartbeat fails is given up the same way: its relay is stopped, its
// lease released (or already gone with its session). Once a look succeeds it is free or held elsewhere, and
// taken as any other. The relays of the other databases run on their own connections and never wait for it.
//
// # Connections
//
// A relay uses, per database it holds, Relay.Workers connections for its batch loops, one for the PostgreSQL
// listener (pgx only) and one that holds the lease, and at times one more (the relay's own short statements
// outside its batches, such as making a topic's held rows due again, or a worker's new connection while its
// broken one is being closed); per database it does not hold, nothing between looks, and at most Probes looks at
// once, one connection each. The fleet sets each Database's pool accordingly: at most Workers + 3 open
// connections, none kept idle while the database is not held. A relay therefore has at most
//
//	H × (Workers + 3) + Probes
//
// connections open, where H is the number of databases it holds (at most MaxHeld). Give each Database a pool of
// its own.
//
// # Adding and removing databases
//
// Update replaces the set. A database that is new is looked at at once (and taken when the share says so); one
// left out is given up as above and never touched again once Update has returned: its pool can be closed then.
// A database whose fields changed (another pool, prefix or dialect under the same name) is given up and looked
// at again as a new one.
package fleet
