package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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
	s.ib = mysqlInboxSQL(s.q)
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
// outbox with STRAIGHT_JOIN, which forces one primary-key lookup per row. The outbox is clustered on
// (part, id): unkeyed claims and each keyed partition are then primary-key range scans that touch no other
// rows (a scan that steps over rows keeps their locks on MariaDB, even in READ COMMITTED).
const (
	mysqlIDsTable  = "JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS j"
	mysqlRefsTable = "JSON_TABLE(?, '$[*]' COLUMNS (p INT PATH '$.p', id BIGINT PATH '$.id', us BIGINT PATH '$.us'," +
		" err TEXT CHARACTER SET utf8mb4 PATH '$.err')) AS j"
	// GET_LOCK names are server-wide and at most 64 characters: the name hashes database and table.
	mysqlLockName = "CONCAT('txbox_outbox:', LEFT(MD5(CONCAT(COALESCE(DATABASE(), ''), '.', ?)), 24), ':', j.p)"
)

func mysqlOutboxSQL(q quoted) outboxSQL {
	byRef := mysqlRefsTable + " STRAIGHT_JOIN " + q.outbox + " AS o ON o.part = j.p AND o.id = j.id"
	deleteRefs := "DELETE o FROM " + byRef
	keep := "INSERT INTO " + q.outboxPublished + " (id, part, topic, msg_key, tag, sharding_key, payload, headers," +
		" attempts, created_at, published_at) SELECT o.id, o.part, o.topic, o.msg_key, o.tag, o.sharding_key," +
		" o.payload, o.headers, o.attempts, o.created_at, UTC_TIMESTAMP(6) FROM " + byRef
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
		claimUnkeyed: "SELECT " + outboxCols + " FROM " + q.outbox + " FORCE INDEX (PRIMARY) WHERE part = -1 AND id > ?" +
			" AND available_at <= UTC_TIMESTAMP(6) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
		// One branch per partition (see OutboxSelectKeyed), each a short primary-key range scan.
		selectKeyed: "(SELECT " + prefixCols("o.", outboxCols) + " FROM " + q.outbox + " AS o FORCE INDEX (PRIMARY)" +
			" WHERE o.part = ? AND o.part >= 0 AND o.available_at <= UTC_TIMESTAMP(6) AND NOT EXISTS (SELECT 1 FROM " +
			q.outbox + " AS b WHERE b.sharding_key = o.sharding_key AND b.available_at > UTC_TIMESTAMP(6) AND b.id < o.id)" +
			" ORDER BY o.part, o.id LIMIT ?)",

		delete:     []string{deleteRefs},
		deleteKeep: []string{keep, deleteRefs},
		retry: "UPDATE " + byRef + " SET o.attempts = o.attempts + 1," +
			" o.available_at = UTC_TIMESTAMP(6) + INTERVAL j.us MICROSECOND, o.last_error = j.err",
		bury: []string{"INSERT INTO " + q.outboxDead + " (id, part, topic, msg_key, tag, sharding_key, payload, headers," +
			" attempts, created_at, dead_at, last_error) SELECT o.id, o.part, o.topic, o.msg_key, o.tag, o.sharding_key," +
			" o.payload, o.headers, o.attempts + 1, o.created_at, UTC_TIMESTAMP(6), j.err FROM " + byRef, deleteRefs},
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

		checkOutbox:    checkColumns(outboxCols+", available_at, last_error", q.outbox, "1 = 0"),
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
	var b strings.Builder
	b.Grow(len(s.ob.insertHead) + len(rows)*(len(s.ob.insertRow)+2))
	b.WriteString(s.ob.insertHead)
	args := make([]any, 0, len(rows)*8)
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s.ob.insertRow)
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
	_, err := db.ExecContext(ctx, b.String(), args...)
	return s.interpret(err)
}

// OutboxSelectKeyed runs one UNION ALL branch per partition, each a short primary-key range scan: an IN list
// would make MySQL read and sort every row of the owned partitions.
func (s *mysqlStore) OutboxSelectKeyed(ctx context.Context, tx DBTX, parts []int, perPartition int) ([]OutboxRow, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	var b strings.Builder
	args := make([]any, 0, 2*len(parts))
	for i, part := range parts {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString(s.ob.selectKeyed)
		args = append(args, part, perPartition)
	}
	return s.queryOutboxRows(ctx, tx, perPartition*len(parts), b.String(), args...)
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
