package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/txbox/txbox/dialect"
)

// mysqlStore is the Store of MySQL 8+ and MariaDB 10.6+ (go-sql-driver/mysql).
type mysqlStore struct{ sqlStore }

func newMySQL(d dialect.Dialect, t dialect.Tables) (*mysqlStore, error) {
	base, err := newSQLStore(d, t, "CREATE DATABASE IF NOT EXISTS ",
		"SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
		"SELECT COUNT(*), COALESCE(SUM(available_at <= UTC_TIMESTAMP(6)), 0), "+
			"COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), UTC_TIMESTAMP(6)), 0) FROM ")
	if err != nil {
		return nil, err
	}
	s := &mysqlStore{base}
	s.times = timeScan{mysqlNewTime, mysqlTimeOf}
	s.ids, s.ints = jsonList[int64], jsonList[int]
	s.refs = func(r []OutboxRowRef) any { return refsArg(r) }
	s.jsonArg = func(b []byte) any { return b }
	s.timeArg = mysqlTimeArg
	s.insertNew = s.insertNewRow
	s.ob = mysqlOutboxSQL(s.q)
	s.ob.insertOne = s.ob.insertHead + s.ob.insertRow // one row, the common case
	s.ib = mysqlInboxSQL(s.q)
	s.ks = mysqlKeysSQL(s.q, s.t)
	s.pt = newPartitionSQL(d, s.q.partitions, "UTC_TIMESTAMP(6)")
	s.fx = mysqlEffectSQL(s.q)
	if s.fl, err = fleetStatements(d, t, mysqlFleetSQL); err != nil {
		return nil, err
	}
	return s, nil
}

func jsonList[T int | int64](xs []T) any {
	b, _ := json.Marshal(xs)
	return string(b)
}

// insertNewRow: a duplicate-key error rolls back only the statement, not the transaction, so it is the answer
// "already recorded". InnoDB blocks the INSERT on another transaction's uncommitted row first. No rows-affected
// count is read (clientFoundRows changes it), and INSERT IGNORE is avoided because it would also hide truncation.
func (s *mysqlStore) insertNewRow(ctx context.Context, tx DBTX, q string, args ...any) (bool, error) {
	_, err := tx.ExecContext(ctx, q, args...)
	switch {
	case err == nil:
		return true, nil
	case dialect.Classify(err) == dialect.KindDuplicateKey:
		return false, nil
	}
	return false, s.interpret(err)
}

// MySQL's GET_LOCK names are server-wide, so the lock name carries the database and the prefix: tests and
// tenants that use separate databases (or prefixes) on one server do not wait for each other.
func (s *mysqlStore) MigrationLock(ctx context.Context, conn *sql.Conn) error {
	var got sql.NullInt64
	err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(CONCAT('txbox_migrate:', LEFT(MD5(CONCAT(COALESCE(DATABASE(), ''),"+
		" ':', ?)), 32)), 300)", s.t.Prefix).Scan(&got)
	if err != nil {
		return fmt.Errorf("take migration lock: %w", s.interpret(err))
	}
	if !got.Valid || got.Int64 != 1 {
		return errors.New("take migration lock: timed out after 300s waiting for another txbox migration")
	}
	return nil
}

func (s *mysqlStore) MigrationUnlock(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "DO RELEASE_LOCK(CONCAT('txbox_migrate:', LEFT(MD5(CONCAT(COALESCE(DATABASE(), ''),"+
		" ':', ?)), 32)))", s.t.Prefix)
	if err != nil {
		return fmt.Errorf("release migration lock: %w", s.interpret(err))
	}
	return nil
}

// MariaDB plans "DELETE ... WHERE id IN (...)" as a full scan when its statistics say the table is small (the
// outbox's steady state), and that scan locks rows other relays claimed with SKIP LOCKED: deadlocks and double
// publishing. Every statement that touches claimed rows therefore joins a JSON_TABLE of (part, id) pairs to the
// outbox with STRAIGHT_JOIN and FORCE INDEX (PRIMARY), which forces one primary-key lookup per row (without the
// hint MariaDB 10.11 planned the UPDATE form as a scan of a five-row outbox, EXPLAIN type ALL, and it waited for
// rows another transaction held). The outbox is clustered on
// (part, id): unkeyed claims and each keyed partition are then primary-key range scans that touch no other
// rows (a scan that steps over rows keeps their locks on MariaDB, even in READ COMMITTED).
const (
	mysqlIDsTable  = "JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS j"
	mysqlRefsTable = "JSON_TABLE(?, '$[*]' COLUMNS (p INT PATH '$.p', id BIGINT PATH '$.id', op INT PATH '$.op'," +
		" us BIGINT PATH '$.us', err TEXT CHARACTER SET utf8mb4 PATH '$.err')) AS j"
	// GET_LOCK names are server-wide and at most 64 characters: the name hashes database and table.
	mysqlLockName = "CONCAT('txbox_outbox:', LEFT(MD5(CONCAT(COALESCE(DATABASE(), ''), '.', ?)), 24), ':', j.p)"
)

func mysqlOutboxSQL(q quoted) outboxSQL {
	byRef := mysqlRefsTable + " STRAIGHT_JOIN " + q.outbox + " AS o FORCE INDEX (PRIMARY) ON o.part = j.p AND o.id = j.id"
	deleteRefs := "DELETE o FROM " + byRef + " WHERE o.claim_token = ?"
	keep := "INSERT INTO " + q.outboxPublished + " (id, part, topic, msg_key, tag, sharding_key, payload, headers," +
		" attempts, created_at, published_at) SELECT o.id, o.part, o.topic, o.msg_key, o.tag, o.sharding_key," +
		" o.payload, o.headers, o.attempts, o.created_at, UTC_TIMESTAMP(6) FROM " + byRef + " WHERE o.claim_token = ?"
	deadByID := mysqlIDsTable + " STRAIGHT_JOIN " + q.outboxDead + " AS d ON d.id = j.id"
	return outboxSQL{
		insertHead: "INSERT INTO " + q.outbox + " (part, topic, msg_key, tag, sharding_key, payload, headers, attempts, " +
			"available_at, created_at) VALUES ",
		insertRow: "(?, ?, ?, ?, ?, ?, ?, 0, COALESCE(?, UTC_TIMESTAMP(6)), UTC_TIMESTAMP(6))",

		prepareConn: "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
		// GROUP BY on the leading column of the primary key (part, id) is a loose index scan: one dive per
		// partition.
		keyedPartitions: "SELECT part FROM " + q.outbox + " FORCE INDEX (PRIMARY) WHERE part >= 0 GROUP BY part ORDER BY part",
		lockPartitions: "SELECT j.p FROM JSON_TABLE(?, '$[*]' COLUMNS (p INT PATH '$')) AS j " +
			"WHERE GET_LOCK(" + mysqlLockName + ", 0) = 1",
		unlock: "DO RELEASE_ALL_LOCKS()",
		// A primary-key range of partition -1, from a remembered id: the scan seeks past the delete-marked rows
		// drained batches leave at the head instead of stepping over them every time, and never touches keyed
		// rows. Stepping over those (as a scan of an id-only key would), MariaDB keeps their locks even in READ
		// COMMITTED and, despite SKIP LOCKED, waited for keyed rows other relays were deleting: measured deadlocks.
		// The locking scan sits in a derived table of ids and sizes; the byte budget is a running sum over it, and
		// the rows are read back by primary key (FORCE INDEX: with small statistics MariaDB planned a scan) with
		// the payload only where it fits.
		claimUnkeyed: mysqlBudget(q.outbox, "SELECT id, part, LENGTH(payload) AS n FROM "+q.outbox+" FORCE INDEX (PRIMARY)"+
			" WHERE part = -1 AND id > ? AND available_at <= UTC_TIMESTAMP(6) AND (lease_until IS NULL OR lease_until <= UTC_TIMESTAMP(6))"+
			" ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"),
		// One branch per partition (see OutboxClaimKeyed), each a short primary-key range scan. A row that is not
		// due holds back the later rows of its key (backoff, DeliverAt, an outage hold), a leased row
		// (claim_token > 0) every row of its key; the index (sharding_key, available_at) finds them.
		claimKeyed: "(SELECT o.id, o.part, LENGTH(o.payload) AS n FROM " + q.outbox + " AS o FORCE INDEX (PRIMARY)" +
			" WHERE o.part = ? AND o.part >= 0 AND o.available_at <= UTC_TIMESTAMP(6) AND NOT EXISTS (SELECT 1 FROM " +
			q.outbox + " AS b WHERE b.sharding_key = o.sharding_key AND b.available_at > UTC_TIMESTAMP(6)" +
			" AND (b.id < o.id OR b.claim_token > 0)) ORDER BY o.part, o.id LIMIT ?)",
		// A keyed row's lease is in available_at, an unkeyed row's in lease_until, which no index covers (see
		// migration 00004).
		leaseKeyed: "UPDATE " + byRef + " SET o.available_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, o.claim_token = ?" +
			" WHERE o.available_at <= UTC_TIMESTAMP(6)",
		leaseUnkeyed: "UPDATE " + byRef + " SET o.lease_until = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, o.claim_token = ?" +
			" WHERE o.available_at <= UTC_TIMESTAMP(6) AND (o.lease_until IS NULL OR o.lease_until <= UTC_TIMESTAMP(6))",

		renew: "UPDATE " + byRef + " SET o.available_at = IF(o.part >= 0, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, o.available_at)," +
			" o.lease_until = IF(o.part < 0, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, NULL)" +
			" WHERE o.claim_token = ? AND IF(o.part >= 0, o.available_at, o.lease_until) > UTC_TIMESTAMP(6)",
		finishLock:   "SELECT o.id FROM " + byRef + " WHERE o.claim_token = ? ORDER BY o.part, o.id FOR UPDATE",
		finishDelete: []string{deleteRefs},
		finishKeep:   []string{keep, deleteRefs},
		finishBury: []string{"INSERT INTO " + q.outboxDead + " (id, part, topic, msg_key, tag, sharding_key, payload, headers," +
			" attempts, created_at, dead_at, last_error) SELECT o.id, o.part, o.topic, o.msg_key, o.tag, o.sharding_key," +
			" o.payload, o.headers, o.attempts + 1, o.created_at, UTC_TIMESTAMP(6), j.err FROM " + byRef + " WHERE o.claim_token = ?",
			deleteRefs},
		finishUpdate: "UPDATE " + byRef + " SET o.attempts = o.attempts + (j.op = " + strconv.Itoa(opRetry) + ")," +
			" o.last_error = IF(j.op = " + strconv.Itoa(opRetry) + ", j.err, o.last_error)," +
			" o.available_at = IF(j.op = " + strconv.Itoa(opRelease) + " AND o.part < 0, o.available_at," +
			" UTC_TIMESTAMP(6) + INTERVAL j.us MICROSECOND), o.lease_until = NULL," +
			" o.claim_token = IF(j.op = " + strconv.Itoa(opHold) + ", -1, NULL) WHERE o.claim_token = ?",
		resumeSelect: "SELECT id, part FROM " + q.outbox + " WHERE topic = ? AND claim_token < 0 ORDER BY id LIMIT ?",
		resume:       "UPDATE " + byRef + " SET o.available_at = UTC_TIMESTAMP(6), o.claim_token = NULL WHERE o.claim_token < 0",
		// One statement: a range of the published_at index, oldest first, n rows.
		purgePublished: "DELETE FROM " + q.outboxPublished +
			" WHERE published_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY published_at LIMIT ?",

		deadList:   "SELECT " + outboxDeadCols + " FROM " + q.outboxDead + " WHERE id > ? ORDER BY id LIMIT ?",
		deadDelete: "DELETE d FROM " + deadByID,
		deadLock:   "SELECT d.id FROM " + deadByID + " ORDER BY d.id FOR UPDATE",
		deadRequeue: []string{
			"INSERT INTO " + q.outbox + " (part, topic, msg_key, tag, sharding_key, payload, headers, attempts," +
				" available_at, created_at) SELECT d.part, d.topic, d.msg_key, d.tag, d.sharding_key, d.payload," +
				" d.headers, 0, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) FROM " + deadByID + " ORDER BY d.id",
			"DELETE d FROM " + deadByID,
		},

		checkOutbox:    checkColumns(outboxCols+", available_at, last_error, claim_token, lease_until", q.outbox, "1 = 0"),
		checkDead:      checkColumns(outboxDeadCols, q.outboxDead, "1 = 0"),
		checkPublished: checkColumns(outboxCols+", published_at", q.outboxPublished, "1 = 0"),
	}
}

func mysqlInboxSQL(q quoted) inboxSQL {
	// A batch is deleted by primary key through a join that forces primary-key lookups, after a plain (non-
	// locking, index-only) read of the purge index chose it. Not "DELETE ... ORDER BY received_at LIMIT n":
	// MariaDB 10.11 plans that as a range over the whole consumer in the primary key plus a filesort, locking
	// every expired row, not n. Not "DELETE ... WHERE msg_key IN (<keys>)" either: planned as a full table scan
	// (EXPLAIN, 3000 rows). JSON_TABLE ... STRAIGHT_JOIN gives eq_ref lookups.
	byKeys := func(table, cond string) string {
		return "DELETE t FROM JSON_TABLE(?, '$[*]' COLUMNS (k VARBINARY(512) PATH '$')) AS j STRAIGHT_JOIN " + table +
			" AS t ON t.consumer = ? AND t.msg_key = j.k WHERE " + cond
	}
	return inboxSQL{
		claim: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at) " +
			"VALUES (?, ?, ?, COALESCE(?, UTC_TIMESTAMP(6)))",
		// A locking read: under REPEATABLE READ a plain SELECT could use a snapshot older than the row whose
		// commit made the INSERT fail. The duplicate-key error already left a shared lock on it.
		claimRead:     "SELECT fingerprint, parked FROM " + q.inbox + " WHERE consumer = ? AND msg_key = ? LOCK IN SHARE MODE",
		clearAttempts: "DELETE FROM " + q.inboxAttempts + " WHERE consumer = ? AND msg_key = ?",

		recordFailure: "INSERT INTO " + q.inboxAttempts + " (consumer, msg_key, attempts, last_error, updated_at) " +
			"VALUES (?, ?, 1, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE attempts = attempts + 1, " +
			"last_error = VALUES(last_error), updated_at = VALUES(updated_at)",
		readAttempts: "SELECT attempts FROM " + q.inboxAttempts + " WHERE consumer = ? AND msg_key = ?",

		parkInbox: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at, parked) " +
			"VALUES (?, ?, ?, UTC_TIMESTAMP(6), TRUE)",
		parkDead: "INSERT INTO " + q.inboxDead + " (consumer, msg_key, fingerprint, payload, headers, topic, message_id, " +
			"attempts, last_error, payload_bytes, headers_bytes, parked_at) " +
			"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6)) " +
			"ON DUPLICATE KEY UPDATE fingerprint = VALUES(fingerprint), payload = VALUES(payload), " +
			"headers = VALUES(headers), topic = VALUES(topic), message_id = VALUES(message_id), " +
			"attempts = VALUES(attempts), last_error = VALUES(last_error), payload_bytes = VALUES(payload_bytes), " +
			"headers_bytes = VALUES(headers_bytes), parked_at = VALUES(parked_at)",
		parkBudget: "SELECT @@max_allowed_packet",

		settleLock:   "SELECT parked FROM " + q.inbox + " WHERE consumer = ? AND msg_key = ? FOR UPDATE",
		settleInsert: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))",
		settleUpdate: "UPDATE " + q.inbox + " SET parked = FALSE, received_at = UTC_TIMESTAMP(6) WHERE consumer = ? AND msg_key = ?",

		purgeSelect: "SELECT msg_key FROM " + q.inbox + " WHERE consumer = ? AND parked = FALSE " +
			"AND received_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY received_at LIMIT ?",
		purge: byKeys(q.inbox, "t.parked = FALSE AND t.received_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND"),
		purgeAttemptsSelect: "SELECT msg_key FROM " + q.inboxAttempts + " WHERE consumer = ? " +
			"AND updated_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY updated_at LIMIT ?",
		purgeAttempts: byKeys(q.inboxAttempts, "t.updated_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND"),

		deadGet:          "SELECT " + inboxDeadCols + " FROM " + q.inboxDead + " WHERE id = ? AND consumer = ?",
		deadGetForUpdate: "SELECT " + inboxDeadCols + " FROM " + q.inboxDead + " WHERE id = ? AND consumer = ? FOR UPDATE",
		deadDelete:       "DELETE FROM " + q.inboxDead + " WHERE id = ? AND consumer = ?",
		deadList:         "SELECT " + inboxDeadCols + " FROM " + q.inboxDead + " WHERE consumer = ? AND id > ? ORDER BY id LIMIT ?",
		deadListKey: "SELECT " + inboxDeadCols + " FROM " + q.inboxDead +
			" WHERE consumer = ? AND msg_key = ? AND id > ? ORDER BY id LIMIT ?",
		unpark:        "DELETE FROM " + q.inbox + " WHERE consumer = ? AND msg_key = ? AND parked = TRUE",
		checkInbox:    checkColumns("consumer, msg_key, fingerprint, received_at, parked", q.inbox, "1 = 0"),
		checkAttempts: checkColumns("consumer, msg_key, attempts, last_error, updated_at", q.inboxAttempts, "1 = 0"),
		checkDead:     checkColumns(inboxDeadCols, q.inboxDead, "1 = 0"),
	}
}

func (s *mysqlStore) OutboxInsert(ctx context.Context, db DBTX, _ bool, rows []OutboxInsertRow) error {
	if len(rows) == 0 {
		return nil
	}
	q := s.ob.insertOne
	if len(rows) > 1 {
		var b strings.Builder
		b.Grow(len(s.ob.insertHead) + len(rows)*(len(s.ob.insertRow)+2))
		b.WriteString(s.ob.insertHead)
		for i := range rows {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(s.ob.insertRow)
		}
		q = b.String()
	}
	args := make([]any, 0, len(rows)*8)
	for _, r := range rows {
		var at, headers any
		if !r.DeliverAt.IsZero() {
			at = mysqlTimeArg(r.DeliverAt)
		}
		if r.Headers != nil {
			headers = r.Headers
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

// mysqlBudget wraps a statement choosing candidates (id, part, payload size n): a running sum in id order marks
// the rows within the byte budget (the first row, too, when the second argument is true), and the rows are read
// back by primary key, with NULL for the payload of rows past the budget (scanOutboxRows cuts there). Arguments:
// budget, take one, then the candidates' own.
func mysqlBudget(outbox, candidates string) string {
	return "SELECT o.id, o.part, o.topic, o.msg_key, o.tag, o.sharding_key, IF(w.fits, o.payload, NULL), o.headers," +
		" o.attempts, o.created_at FROM (SELECT id, part, (SUM(n) OVER (ORDER BY id) <= ? OR" +
		" (ROW_NUMBER() OVER (ORDER BY id) = 1 AND ?)) AS fits FROM (" + candidates + ") AS c) AS w" +
		" STRAIGHT_JOIN " + outbox + " AS o FORCE INDEX (PRIMARY) ON o.part = w.part AND o.id = w.id ORDER BY w.id"
}

// OutboxClaimKeyed runs one UNION ALL branch per partition, each a short primary-key range scan (an IN list
// would make MySQL read and sort every row of the owned partitions), then leases what it chose.
func (s *mysqlStore) OutboxClaimKeyed(ctx context.Context, db TxBeginner, p *OutboxClaim) ([]OutboxRow, error) {
	budget, err := claimArgs(p)
	if err != nil || len(p.Parts) == 0 || p.Limit <= 0 {
		return nil, err
	}
	var b strings.Builder
	args := make([]any, 0, 3+2*len(p.Parts))
	args = append(args, budget, p.TakeOne)
	for i, part := range p.Parts {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString(s.ob.claimKeyed)
		args = append(args, part, p.PerPartition)
	}
	b.WriteString(" ORDER BY id LIMIT ?")
	args = append(args, p.Limit)
	return s.claim(ctx, db, p, mysqlBudget(s.q.outbox, b.String()), args, s.ob.leaseKeyed)
}

func (s *mysqlStore) OutboxClaimUnkeyed(ctx context.Context, db TxBeginner, p *OutboxClaim) ([]OutboxRow, error) {
	budget, err := claimArgs(p)
	if err != nil || p.Limit <= 0 {
		return nil, err
	}
	return s.claim(ctx, db, p, s.ob.claimUnkeyed, []any{budget, p.TakeOne, p.AfterID, p.Limit}, s.ob.leaseUnkeyed)
}

// claim chooses rows with q and leases them, in one transaction: MySQL has no UPDATE ... RETURNING. The lease
// statement checks that every row is still due; when one is not (a row changed between the statements, which
// the partition lock and SKIP LOCKED rule out), the claim rolls back and fails as retryable.
func (s *mysqlStore) claim(ctx context.Context, db TxBeginner, p *OutboxClaim, q string, args []any, lease string) (_ []OutboxRow, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("claim: begin: %w", s.interpret(err))
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", s.interpret(err))
	}
	out, err := scanOutboxRows(rows, p.Limit, s.times, true)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", s.interpret(err))
	}
	if len(out) > 0 {
		refs := make([]OutboxRowRef, len(out))
		for i, r := range out {
			refs[i] = OutboxRowRef{ID: r.ID, Partition: r.Partition}
		}
		n, err := s.execCount(ctx, tx, "claim: lease", lease, refsArg(refs), p.Lease.Microseconds(), p.Token)
		if err != nil {
			return nil, err
		}
		if n != len(out) {
			return nil, retryableError(fmt.Sprintf("claim: %d of %d chosen rows changed before the lease", len(out)-n, len(out)))
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim: commit: %w", s.interpret(err))
	}
	return out, nil
}

func (s *mysqlStore) OutboxResume(ctx context.Context, db DBTX, topic string, limit int) (int, error) {
	rows, err := db.QueryContext(ctx, s.ob.resumeSelect, topic, limit)
	if err != nil {
		return 0, fmt.Errorf("resume held rows: %w", s.interpret(err))
	}
	var refs []OutboxRowRef
	for rows.Next() {
		var r OutboxRowRef
		if err := rows.Scan(&r.ID, &r.Partition); err != nil {
			rows.Close()
			return 0, fmt.Errorf("resume held rows: %w", s.interpret(err))
		}
		refs = append(refs, r)
	}
	if err := rows.Close(); err != nil || rows.Err() != nil {
		return 0, fmt.Errorf("resume held rows: %w", s.interpret(errors.Join(err, rows.Err())))
	}
	if len(refs) == 0 {
		return 0, nil
	}
	return s.execCount(ctx, db, "resume held rows", s.ob.resume, refsArg(refs))
}

func (s *mysqlStore) OutboxListen(context.Context, *sql.DB) (OutboxListener, error) {
	return nil, fmt.Errorf("%w: MySQL has no LISTEN/NOTIFY; relays poll", ErrNotifyUnsupported)
}

// prefixCols qualifies a comma-separated column list with a table alias.
func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, c := range parts {
		parts[i] = prefix + c
	}
	return strings.Join(parts, ", ")
}
