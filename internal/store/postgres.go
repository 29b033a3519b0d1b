package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/txbox/txbox/dialect"
)

// postgresStore is the Store of PostgreSQL 13+ (lib/pq or pgx's database/sql driver).
//
// Arrays travel as text literals ('{1,2,3}') cast in SQL and row sets as JSON, so that the same statements work
// through lib/pq and pgx without driver-specific array types.
type postgresStore struct{ sqlStore }

func newPostgres(d dialect.Dialect, t dialect.Tables) (*postgresStore, error) {
	base, err := newSQLStore(d, t, "CREATE SCHEMA IF NOT EXISTS ", "SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1",
		"SELECT COUNT(*), COUNT(*) FILTER (WHERE available_at <= clock_timestamp()), "+
			"COALESCE((EXTRACT(EPOCH FROM clock_timestamp() - MIN(created_at)) * 1000000)::bigint, 0) FROM ")
	if err != nil {
		return nil, err
	}
	s := &postgresStore{base}
	s.channel = NotifyChannel(t.Outbox)
	s.times = timeScan{pgNewTime, pgTimeOf}
	s.ids = func(ids []int64) any { return pgIntArray(ids) }
	s.ints = func(ps []int) any { return pgIntArray(ps) }
	s.refs = func(rows []OutboxRowRef) any {
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		return pgIntArray(ids)
	}
	// JSON as text: lib/pq would send a []byte as bytea, which jsonb rejects.
	s.jsonArg = func(b []byte) any { return string(b) }
	s.timeArg = func(t time.Time) any { return t.UTC() }
	s.insertNew = s.insertNewRow
	s.ob = postgresOutboxSQL(s.q, s.channel)
	// The one-row statements, the common case, rendered once.
	s.ob.insertOne, s.ob.insertOneNotify = pgInsertSQL(&s.ob, 1, false), pgInsertSQL(&s.ob, 1, true)
	s.ib = postgresInboxSQL(s.q)
	s.ks = postgresKeysSQL(s.q, s.t)
	s.pt = newPartitionSQL(d, s.q.partitions, "clock_timestamp()")
	s.fx = postgresEffectSQL(s.q)
	if s.fl, err = fleetStatements(d, t, postgresFleetSQL); err != nil {
		return nil, err
	}
	return s, nil
}

type pgTime struct{ sql.NullTime }

func pgNewTime() sql.Scanner           { return &pgTime{} }
func pgTimeOf(s sql.Scanner) time.Time { return s.(*pgTime).Time.UTC() }

func pgIntArray[T int | int64](xs []T) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(x), 10))
	}
	b.WriteByte('}')
	return b.String()
}

// insertNewRow: a failed statement aborts a PostgreSQL transaction, so a unique violation cannot be the answer
// the way it is on MySQL. INSERT ... ON CONFLICT DO NOTHING waits for a concurrent inserter of the same key to
// end and then either inserts (it rolled back) or inserts nothing (it committed): the command tag's row count
// (INSERT 0 1 or INSERT 0 0) is the answer, which PostgreSQL reports alike to every driver. Exec, not QueryRow:
// reading the RETURNING row through database/sql's Rows cost the inbox's claim three times the client CPU of
// the handler's Exec (txbox's bench/, CPU profile of the inbox case with pgx).
func (s *postgresStore) insertNewRow(ctx context.Context, tx DBTX, q string, args ...any) (bool, error) {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return false, s.interpret(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("rows affected: %w", err)
	}
	return n == 1, nil
}

// Advisory locks are per database; the key mixes in the current schema and the prefix, so that installations
// migrated side by side (tests, tenants) do not wait for each other. pg_advisory_lock blocks until the lock is
// free or ctx ends.
func (s *postgresStore) MigrationLock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(hashtext('txbox_migrate:' || current_schema() || ':' || $1))", s.t.Prefix)
	if err != nil {
		return fmt.Errorf("take migration lock: %w", s.interpret(err))
	}
	return nil
}

func (s *postgresStore) MigrationUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock(hashtext('txbox_migrate:' || current_schema() || ':' || $1))", s.t.Prefix)
	if err != nil {
		return fmt.Errorf("release migration lock: %w", s.interpret(err))
	}
	return nil
}

func postgresOutboxSQL(q quoted, channel string) outboxSQL {
	cols := "part, topic, msg_key, tag, sharding_key, payload, headers, attempts, created_at"
	deleteIDs := "DELETE FROM " + q.outbox + " WHERE id = ANY($1::bigint[]) AND claim_token = $2"
	return outboxSQL{
		insertHead: "INSERT INTO " + q.outbox + " (part, topic, msg_key, tag, sharding_key, payload, headers, attempts, " +
			"available_at, created_at) VALUES ",
		insertRow: "(%s, %s, %s, %s, %s, %s, %s::jsonb, 0, COALESCE(%s::timestamptz, now()), now())",
		// NOTIFY is transactional: relays wake when the caller commits, never for a rollback. The data-modifying
		// CTE runs even though nothing reads it, so insert and notify cost one round trip. The channel is an
		// identifier txbox derived from validated table names.
		insertNotify: ") SELECT pg_notify('" + channel + "', '')",

		prepareConn: "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
		// PostgreSQL has no loose index scan; the recursive CTE emulates one (a skip scan): one dive per partition.
		keyedPartitions: "WITH RECURSIVE p(n) AS (" +
			"SELECT (SELECT part FROM " + q.outbox + " WHERE part >= 0 ORDER BY part LIMIT 1)" +
			" UNION ALL SELECT (SELECT part FROM " + q.outbox + " WHERE part > p.n ORDER BY part LIMIT 1) FROM p WHERE p.n IS NOT NULL)" +
			" SELECT n FROM p WHERE n IS NOT NULL",
		// Advisory lock keys: (hash of schema and table, partition). The two-int4 key space is separate from the
		// one-bigint space the migration lock uses.
		lockPartitions: "SELECT p FROM unnest($1::int[]) AS p WHERE pg_try_advisory_lock(hashtext(current_schema() || '.' || $2), p)",
		unlock:         "SELECT pg_advisory_unlock_all()",
		// Claims: one statement each, in autocommit, so that the lease commits with it. The candidates are picked
		// in a MATERIALIZED CTE (evaluated once), cut to the byte budget by a running sum in id order, and leased
		// through "id = ANY(ARRAY(...))", an index scan of the primary key whatever the planner estimates.
		claimUnkeyed: "WITH c AS MATERIALIZED (SELECT id, octet_length(payload)::bigint AS n FROM " + q.outbox +
			" WHERE id > $1 AND part = -1 AND available_at <= now() AND (lease_until IS NULL OR lease_until <= now())" +
			" ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED), " + pgBudget("$3", "$4") + pgLease(q.outbox, "lease_until", "$5", "$6"),
		// LATERAL: one short (part, id) range scan per partition. "part >= 0" tells the planner (whose statistics
		// often say every row has part -1) that few rows match, or it walks the primary key for ORDER BY id
		// instead. The NOT EXISTS repeats the partial index's predicate (available_at > created_at) so that it
		// can use it: a row that is not due holds back the later rows of its key (backoff, DeliverAt, an outage
		// hold), a leased row (claim_token > 0) every row of its key.
		claimKeyed: "WITH c AS MATERIALIZED (SELECT x.id, x.n FROM unnest($1::int[]) AS p(part) CROSS JOIN LATERAL (" +
			"SELECT o.id, octet_length(o.payload)::bigint AS n FROM " + q.outbox + " AS o WHERE o.part = p.part AND o.part >= 0" +
			" AND o.available_at <= now() AND NOT EXISTS (SELECT 1 FROM " + q.outbox + " AS b WHERE b.sharding_key = o.sharding_key" +
			" AND b.part >= 0 AND b.available_at > b.created_at AND b.available_at > now() AND (b.id < o.id OR b.claim_token > 0))" +
			" ORDER BY o.part, o.id LIMIT $2) AS x ORDER BY x.id LIMIT $3), " + pgBudget("$4", "$5") +
			pgLease(q.outbox, "available_at", "$6", "$7"),

		// A keyed row's lease is in available_at, an unkeyed row's in lease_until (see migration 00004).
		renew: "UPDATE " + q.outbox + " SET available_at = CASE WHEN part >= 0 THEN now() + $2 * interval '1 microsecond'" +
			" ELSE available_at END, lease_until = CASE WHEN part < 0 THEN now() + $3 * interval '1 microsecond' END" +
			" WHERE id = ANY($1::bigint[]) AND claim_token = $4 AND CASE WHEN part >= 0 THEN available_at ELSE lease_until END > now()",
		finishDelete: []string{deleteIDs},
		finishKeep: []string{"WITH d AS (" + deleteIDs + " RETURNING *) INSERT INTO " + q.outboxPublished + " (id, " + cols +
			", published_at) SELECT id, " + cols + ", statement_timestamp() FROM d"},
		finishBury: []string{"WITH j AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS j(id bigint, err text))," +
			" d AS (DELETE FROM " + q.outbox + " AS o USING j WHERE o.id = j.id AND o.claim_token = $2 RETURNING o.*, j.err)" +
			" INSERT INTO " + q.outboxDead + " (id, part, topic, msg_key, tag, sharding_key, payload, headers, attempts," +
			" created_at, dead_at, last_error) SELECT id, part, topic, msg_key, tag, sharding_key, payload, headers," +
			" attempts + 1, created_at, now(), err FROM d"},
		finishUpdate: "UPDATE " + q.outbox + " AS o SET attempts = o.attempts + (j.op = " + strconv.Itoa(opRetry) + ")::int," +
			" last_error = CASE WHEN j.op = " + strconv.Itoa(opRetry) + " THEN j.err ELSE o.last_error END," +
			// Released unkeyed rows keep their available_at: no indexed column changes (HOT).
			" available_at = CASE WHEN j.op = " + strconv.Itoa(opRelease) + " AND o.part < 0 THEN o.available_at" +
			" ELSE now() + j.us * interval '1 microsecond' END, lease_until = NULL," +
			" claim_token = CASE WHEN j.op = " + strconv.Itoa(opHold) + " THEN -1 END" +
			" FROM jsonb_to_recordset($1::jsonb) AS j(id bigint, op int, us bigint, err text) WHERE o.id = j.id AND o.claim_token = $2",
		resume: "UPDATE " + q.outbox + " SET available_at = now(), claim_token = NULL WHERE id = ANY(ARRAY(SELECT id FROM " +
			q.outbox + " WHERE topic = $1 AND claim_token < 0 ORDER BY id LIMIT $2)) AND claim_token < 0",
		// The batch is picked in a CTE (evaluated once; SKIP LOCKED leaves rows another relay is purging to it)
		// and deleted by primary key.
		purgePublished: "WITH batch AS MATERIALIZED (SELECT id FROM " + q.outboxPublished +
			" WHERE published_at < now() - $1::bigint * INTERVAL '1 microsecond' ORDER BY published_at LIMIT $2" +
			" FOR UPDATE SKIP LOCKED) DELETE FROM " + q.outboxPublished + " AS t USING batch WHERE t.id = batch.id",

		deadList:   "SELECT " + outboxDeadCols + " FROM " + q.outboxDead + " WHERE id > $1 ORDER BY id LIMIT $2",
		deadDelete: "DELETE FROM " + q.outboxDead + " WHERE id = ANY($1::bigint[])",
		deadRequeue: []string{"WITH d AS (DELETE FROM " + q.outboxDead + " WHERE id = ANY($1::bigint[]) RETURNING *)" +
			" INSERT INTO " + q.outbox + " (part, topic, msg_key, tag, sharding_key, payload, headers, attempts, available_at," +
			" created_at) SELECT part, topic, msg_key, tag, sharding_key, payload, headers, 0, now(), now()" +
			" FROM d ORDER BY id"},

		checkOutbox:    checkColumns(outboxCols+", available_at, last_error, claim_token, lease_until", q.outbox, "FALSE"),
		checkDead:      checkColumns(outboxDeadCols, q.outboxDead, "FALSE"),
		checkPublished: checkColumns(outboxCols+", published_at", q.outboxPublished, "FALSE"),
	}
}

func postgresInboxSQL(q quoted) inboxSQL {
	// Purge batches are chosen through the partial purge index and locked with SKIP LOCKED (a row a Replay holds
	// is left for the next run) in a CTE, which PostgreSQL evaluates once: as an IN (subquery) the planner may
	// rescan the subquery, and every rescan would pick further rows past the LIMIT. The outer conditions are
	// re-checked on the latest row version.
	purge := func(table, cond, order string) string {
		return "WITH batch AS MATERIALIZED (SELECT msg_key FROM " + table + " WHERE consumer = $1 AND " + cond +
			" ORDER BY " + order + " LIMIT $3 FOR UPDATE SKIP LOCKED) DELETE FROM " + table +
			" AS t USING batch WHERE t.consumer = $1 AND t.msg_key = batch.msg_key AND t." + cond
	}
	return inboxSQL{
		// A plain INSERT, not a CTE that also reads the existing row: reading it in the same statement would save
		// a round trip for duplicates (10% in BenchmarkProcess) but costs more on every new key (inbox/raw
		// 0.46 → 0.55 with lib/pq, 0.62 → 0.64 with pgx, medians of five runs). The read is a second statement:
		// under READ COMMITTED it takes a fresh snapshot that sees a row committed while the INSERT waited (a
		// CTE in the INSERT's statement would not).
		claim: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at) " +
			"VALUES ($1, $2, $3, COALESCE($4::timestamptz, now())) ON CONFLICT (consumer, msg_key) DO NOTHING RETURNING TRUE",
		claimRead:     "SELECT fingerprint, parked FROM " + q.inbox + " WHERE consumer = $1 AND msg_key = $2",
		clearAttempts: "DELETE FROM " + q.inboxAttempts + " WHERE consumer = $1 AND msg_key = $2",

		recordFailure: "INSERT INTO " + q.inboxAttempts + " AS a (consumer, msg_key, attempts, last_error, updated_at) " +
			"VALUES ($1, $2, 1, $3, now()) ON CONFLICT (consumer, msg_key) DO UPDATE SET " +
			"attempts = a.attempts + 1, last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at " +
			"RETURNING attempts",

		parkInbox: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at, parked) " +
			"VALUES ($1, $2, $3, now(), TRUE) ON CONFLICT (consumer, msg_key) DO NOTHING RETURNING TRUE",
		parkDead: "INSERT INTO " + q.inboxDead + " AS t (consumer, msg_key, fingerprint, payload, headers, topic, " +
			"message_id, attempts, last_error, payload_bytes, headers_bytes, parked_at) " +
			"VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10::bigint, $11::bigint, now()) " +
			"ON CONFLICT (consumer, msg_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, " +
			"payload = EXCLUDED.payload, headers = EXCLUDED.headers, topic = EXCLUDED.topic, " +
			"message_id = EXCLUDED.message_id, attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error, " +
			"payload_bytes = EXCLUDED.payload_bytes, headers_bytes = EXCLUDED.headers_bytes, " +
			"parked_at = EXCLUDED.parked_at",

		settleLock: "SELECT parked FROM " + q.inbox + " WHERE consumer = $1 AND msg_key = $2 FOR UPDATE",
		settleInsert: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at) " +
			"VALUES ($1, $2, $3, now()) ON CONFLICT (consumer, msg_key) DO NOTHING RETURNING TRUE",
		settleUpdate: "UPDATE " + q.inbox + " SET parked = FALSE, received_at = now() WHERE consumer = $1 AND msg_key = $2",

		purge:         purge(q.inbox, "received_at < now() - $2::bigint * INTERVAL '1 microsecond' AND NOT parked", "received_at"),
		purgeAttempts: purge(q.inboxAttempts, "updated_at < now() - $2::bigint * INTERVAL '1 microsecond'", "updated_at"),

		deadGet:          "SELECT " + inboxDeadCols + " FROM " + q.inboxDead + " WHERE id = $1 AND consumer = $2",
		deadGetForUpdate: "SELECT " + inboxDeadCols + " FROM " + q.inboxDead + " WHERE id = $1 AND consumer = $2 FOR UPDATE",
		deadDelete:       "DELETE FROM " + q.inboxDead + " WHERE id = $1 AND consumer = $2",
		deadList: "SELECT " + inboxDeadCols + " FROM " + q.inboxDead +
			" WHERE consumer = $1 AND id > $2 ORDER BY id LIMIT $3",
		deadListKey: "SELECT " + inboxDeadCols + " FROM " + q.inboxDead +
			" WHERE consumer = $1 AND msg_key = $2 AND id > $3 ORDER BY id LIMIT $4",
		unpark:        "DELETE FROM " + q.inbox + " WHERE consumer = $1 AND msg_key = $2 AND parked",
		checkInbox:    checkColumns("consumer, msg_key, fingerprint, received_at, parked", q.inbox, "FALSE"),
		checkAttempts: checkColumns("consumer, msg_key, attempts, last_error, updated_at", q.inboxAttempts, "FALSE"),
		checkDead:     checkColumns(inboxDeadCols, q.inboxDead, "FALSE"),
	}
}

// pgInsertSQL renders the INSERT of n outbox rows, with the NOTIFY when notify is set.
func pgInsertSQL(ob *outboxSQL, n int, notify bool) string {
	var b strings.Builder
	if notify {
		b.WriteString("WITH ins AS (")
	}
	b.WriteString(ob.insertHead)
	p := 0
	ph := func() string { p++; return "$" + strconv.Itoa(p) }
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, ob.insertRow, ph(), ph(), ph(), ph(), ph(), ph(), ph(), ph())
	}
	if notify {
		b.WriteString(ob.insertNotify)
	}
	return b.String()
}

func (s *postgresStore) OutboxInsert(ctx context.Context, db DBTX, notify bool, rows []OutboxInsertRow) error {
	if len(rows) == 0 {
		return nil
	}
	var q string
	switch {
	case len(rows) > 1:
		q = pgInsertSQL(&s.ob, len(rows), notify)
	case notify:
		q = s.ob.insertOneNotify
	default:
		q = s.ob.insertOne
	}
	args := make([]any, 0, len(rows)*8)
	for _, r := range rows {
		var at, headers any
		if !r.DeliverAt.IsZero() {
			at = r.DeliverAt.UTC()
		}
		if r.Headers != nil {
			headers = string(r.Headers)
		}
		payload := r.Payload
		if payload == nil {
			payload = []byte{}
		}
		args = append(args, r.Partition, r.Topic, r.Key, r.Tag, r.ShardingKey, payload, headers, at)
	}
	_, err := db.ExecContext(ctx, q, args...)
	return s.interpret(err)
}

// pgBudget is the CTE w: the ids of c (candidates with payload sizes n) in id order while their running sum of
// sizes stays within the budget, or the first one when takeOne.
func pgBudget(budget, takeOne string) string {
	return "w AS (SELECT id FROM (SELECT id, sum(n) OVER (ORDER BY id) AS total, row_number() OVER (ORDER BY id) AS i" +
		" FROM c) AS x WHERE total <= " + budget + " OR (i = 1 AND " + takeOne + "::boolean)) "
}

// pgLease leases the rows of w: column (available_at or lease_until) becomes the lease end, claim_token the
// batch's token.
func pgLease(outbox, column, leaseUS, token string) string {
	return "UPDATE " + outbox + " AS o SET " + column + " = now() + " + leaseUS + " * interval '1 microsecond', claim_token = " +
		token + " WHERE o.id = ANY(ARRAY(SELECT id FROM w)) RETURNING " + prefixCols("o.", outboxCols)
}

func (s *postgresStore) OutboxClaimKeyed(ctx context.Context, db TxBeginner, p *OutboxClaim) ([]OutboxRow, error) {
	budget, err := claimArgs(p)
	if err != nil || len(p.Parts) == 0 || p.Limit <= 0 {
		return nil, err
	}
	rows, err := s.queryOutboxRows(ctx, db, p.Limit, s.ob.claimKeyed, pgIntArray(p.Parts), p.PerPartition, p.Limit,
		budget, p.TakeOne, p.Lease.Microseconds(), p.Token)
	sortByID(rows)
	return rows, err
}

func (s *postgresStore) OutboxClaimUnkeyed(ctx context.Context, db TxBeginner, p *OutboxClaim) ([]OutboxRow, error) {
	budget, err := claimArgs(p)
	if err != nil || p.Limit <= 0 {
		return nil, err
	}
	rows, err := s.queryOutboxRows(ctx, db, p.Limit, s.ob.claimUnkeyed, p.AfterID, p.Limit, budget, p.TakeOne,
		p.Lease.Microseconds(), p.Token)
	sortByID(rows)
	return rows, err
}

func (s *postgresStore) OutboxResume(ctx context.Context, db DBTX, topic string, limit int) (int, error) {
	return s.execCount(ctx, db, "resume held rows", s.ob.resume, topic, limit)
}

// pgxConner is what pgx's database/sql driver connection (*stdlib.Conn) offers: its native connection, which
// can wait for notifications while idle. lib/pq only reads notifications while a query runs, so it gets none.
type pgxConner interface{ Conn() *pgx.Conn }

func (s *postgresStore) OutboxListen(ctx context.Context, db *sql.DB) (OutboxListener, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, s.interpret(err)
	}
	isPgx := false
	if err := conn.Raw(func(dc any) error { _, isPgx = dc.(pgxConner); return nil }); err != nil {
		_ = conn.Close()
		return nil, s.interpret(err)
	}
	if !isPgx {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: only pgx's driver receives notifications on an idle connection", ErrNotifyUnsupported)
	}
	if _, err := conn.ExecContext(ctx, `LISTEN "`+s.channel+`"`); err != nil {
		DiscardConn(conn)
		return nil, s.interpret(err)
	}
	return pgxListener{conn: conn, interpret: s.interpret}, nil
}

type pgxListener struct {
	conn      *sql.Conn
	interpret func(error) error
}

func (l pgxListener) Wait(ctx context.Context) error {
	return l.conn.Raw(func(dc any) error {
		_, err := dc.(pgxConner).Conn().WaitForNotification(ctx)
		return l.interpret(err)
	})
}

func (l pgxListener) Close() { DiscardConn(l.conn) }

// DiscardConn closes conn's underlying connection instead of returning it to the pool: it may hold session state
// (LISTEN, advisory locks, READ COMMITTED).
func DiscardConn(c *sql.Conn) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	_ = c.Close()
}
