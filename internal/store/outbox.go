package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// OutboxStore is the SQL the outbox and relay packages run. Each dialect implements it in its
// <dialect>_outbox.go file.
type OutboxStore interface {
	// OutboxInsert writes rows in one statement (and, on PostgreSQL with notify set, sends a transactional
	// NOTIFY in the same round trip).
	OutboxInsert(ctx context.Context, db DBTX, notify bool, rows []OutboxInsertRow) error

	// OutboxPrepareConn readies a connection a relay worker keeps for its batches: READ COMMITTED for every
	// transaction of the session (on MySQL the claim then locks no gaps, which would block producers, and
	// releases rows it did not match). The session state stays with the connection, so the caller must not
	// hand it back to the pool.
	OutboxPrepareConn(ctx context.Context, conn *sql.Conn) error
	// OutboxKeyedPartitions returns the partitions that hold at least one keyed row, in ascending order, using
	// index dives on (part, id) rather than a scan.
	OutboxKeyedPartitions(ctx context.Context, db DBTX) ([]int, error)
	// OutboxLockPartitions tries, without waiting, to take the advisory lock of each of parts on conn and
	// returns the ones it got. The locks belong to the connection's session: they are released by
	// OutboxUnlockPartitions or when the connection dies.
	OutboxLockPartitions(ctx context.Context, conn *sql.Conn, parts []int) ([]int, error)
	// OutboxUnlockPartitions releases every advisory lock the session of conn holds.
	OutboxUnlockPartitions(ctx context.Context, conn *sql.Conn) error

	// OutboxSelectKeyed returns, for each of parts (which the caller owns), up to perPartition due rows in id
	// order, leaving out every row that has an earlier row of its sharding key that is not due (a row in
	// backoff or delayed holds back the rest of its key). It takes no row locks: the partition lock is the
	// claim.
	OutboxSelectKeyed(ctx context.Context, tx DBTX, parts []int, perPartition int) ([]OutboxRow, error)
	// OutboxClaimUnkeyed locks and returns up to limit due rows without a sharding key with id > afterID, in id
	// order, skipping rows other transactions hold (FOR UPDATE SKIP LOCKED). Run it in a transaction.
	OutboxClaimUnkeyed(ctx context.Context, tx DBTX, afterID int64, limit int) ([]OutboxRow, error)

	// OutboxDelete deletes rows through primary-key lookups only (never a scan that could lock rows other relays
	// claimed) and returns how many it deleted. With keep it moves them to the published table first.
	OutboxDelete(ctx context.Context, tx DBTX, rows []OutboxRowRef, keep bool) (int64, error)
	// OutboxRetry records a failed attempt on each row: attempts+1, last_error, available_at = now + Delay.
	OutboxRetry(ctx context.Context, tx DBTX, rows []OutboxRetryRow) error
	// OutboxBury moves rows to the dead-letter table with their last error (attempts+1) and deletes them from
	// the outbox.
	OutboxBury(ctx context.Context, tx DBTX, rows []OutboxRetryRow) error
	// OutboxPurgePublished deletes up to limit rows of the published table published more than olderThan ago,
	// oldest first, and returns how many it deleted.
	OutboxPurgePublished(ctx context.Context, db DBTX, olderThan time.Duration, limit int) (int, error)

	// OutboxDeadList lists dead letters with id > afterID in id order, at most limit.
	OutboxDeadList(ctx context.Context, db DBTX, afterID int64, limit int) ([]OutboxDeadRow, error)
	// OutboxDeadRequeue copies the dead letters ids back into the outbox as new rows (new ids, attempts 0, due
	// now) and deletes them from the dead-letter table. Run it in a transaction. It returns how many moved.
	OutboxDeadRequeue(ctx context.Context, tx DBTX, ids []int64) (int64, error)
	// OutboxDeadDelete deletes the dead letters ids and returns how many it deleted.
	OutboxDeadDelete(ctx context.Context, db DBTX, ids []int64) (int64, error)

	// OutboxListen takes a connection of db, subscribes it to the outbox's notification channel and returns a
	// listener whose Wait returns when a notification arrives. It returns an error wrapping
	// ErrNotifyUnsupported, without keeping a connection, when notifications cannot be received.
	OutboxListen(ctx context.Context, db *sql.DB) (OutboxListener, error)

	// OutboxCheckSchema returns an error wrapping dialect.ErrSchemaMissing when one of the outbox tables or
	// columns txbox uses does not exist.
	OutboxCheckSchema(ctx context.Context, db DBTX) error
}

// OutboxListener waits for outbox notifications on its connection.
type OutboxListener interface {
	// Wait blocks until a notification arrives (nil), ctx ends, or the connection fails.
	Wait(ctx context.Context) error
	// Close ends the listening connection; it is never handed back to the pool.
	Close()
}

// OutboxInsertRow is one message to insert. Headers is JSON (an object of strings) or nil.
type OutboxInsertRow struct {
	Partition   int
	Topic       string
	Key         string
	Tag         string
	ShardingKey string
	Payload     []byte
	Headers     []byte
	DeliverAt   time.Time // zero: due at once
}

// OutboxRow is an outbox row as a relay reads it. Headers is JSON or nil.
type OutboxRow struct {
	ID          int64
	Partition   int
	Topic       string
	Key         string
	Tag         string
	ShardingKey string
	Payload     []byte
	Headers     []byte
	Attempts    int
	CreatedAt   time.Time
}

// OutboxRowRef names an outbox row. MySQL clusters the outbox on (part, id), so it needs both to reach a row
// through the primary key.
type OutboxRowRef struct {
	ID        int64
	Partition int
}

// OutboxRetryRow is one failed attempt: a retry after Delay (OutboxRetry), or a move to the dead-letter table
// (OutboxBury, which ignores Delay).
type OutboxRetryRow struct {
	ID        int64
	Partition int
	Delay     time.Duration
	Error     string
}

// OutboxDeadRow is a dead letter.
type OutboxDeadRow struct {
	OutboxRow
	LastError string
	DeadAt    time.Time
}

// outboxSQL holds a dialect's outbox statements for one table set.
type outboxSQL struct {
	insertHead, insertRow, insertNotify string

	prepareConn     string
	keyedPartitions string
	lockPartitions  string // args: partitions, outbox table name
	unlock          string
	claimUnkeyed    string // args: after id, limit
	selectKeyed     string // PostgreSQL only; MySQL builds a UNION per call

	// delete and deleteKeep (move to the published table first) run in order with the refs argument; the count
	// is the last statement's.
	delete, deleteKeep []string
	retry              string   // arg: refs with delay and error
	bury               []string // arg: refs with error; run in order
	purgePublished     string   // args: microseconds, limit

	deadList    string // args: after id, limit
	deadDelete  string // arg: ids
	deadLock    string // MySQL only: locks dead letters before a requeue (arg: ids)
	deadRequeue []string

	checkOutbox, checkDead, checkPublished string
}

// outboxCols are the columns a relay reads, in the order scanOutboxRows expects.
const outboxCols = "id, part, topic, msg_key, tag, sharding_key, payload, headers, attempts, created_at"

// outboxDeadCols are the dead-letter columns, in the order scanOutboxDeadRows expects.
const outboxDeadCols = outboxCols + ", last_error, dead_at"

// refJSON is how rows travel into a statement: one JSON array that the statement joins (MySQL JSON_TABLE,
// PostgreSQL jsonb_to_recordset) to reach each row by primary key.
type refJSON struct {
	P  int   `json:"p"`
	ID int64 `json:"id"`
	// US is always sent: a retry with a delay under a microsecond is due now (available_at = now + 0), and
	// the statements would read a missing "us" as NULL, which fails the whole retry on available_at NOT NULL.
	US  int64  `json:"us"`
	Err string `json:"err,omitempty"`
}

// refsArg renders row references as JSON, by hand: json.Marshal's reflection was a tenth of a drained batch's
// client time.
func refsArg(rows []OutboxRowRef) string {
	data := make([]byte, 0, 32*len(rows))
	data = append(data, '[')
	for i, r := range rows {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, `{"p":`...)
		data = strconv.AppendInt(data, int64(r.Partition), 10)
		data = append(data, `,"id":`...)
		data = strconv.AppendInt(data, r.ID, 10)
		data = append(data, '}')
	}
	return string(append(data, ']'))
}

func retryArg(rows []OutboxRetryRow) string {
	js := make([]refJSON, len(rows))
	for i, r := range rows {
		js[i] = refJSON{P: r.Partition, ID: r.ID, US: r.Delay.Microseconds(), Err: errorText(r.Error)}
	}
	data, _ := json.Marshal(js)
	return string(data)
}

// execAll runs statements in order with the same arguments and returns the last one's count.
func (s *sqlStore) execAll(ctx context.Context, db DBTX, stmts []string, args ...any) (int64, error) {
	var n int64
	for _, q := range stmts {
		res, err := db.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, s.interpret(err)
		}
		n, _ = res.RowsAffected()
	}
	return n, nil
}

func (s *sqlStore) OutboxPrepareConn(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, s.ob.prepareConn)
	return s.interpret(err)
}

func (s *sqlStore) OutboxKeyedPartitions(ctx context.Context, db DBTX) ([]int, error) {
	rows, err := db.QueryContext(ctx, s.ob.keyedPartitions)
	if err != nil {
		return nil, s.interpret(err)
	}
	out, err := scanInts(rows)
	return out, s.interpret(err)
}

func (s *sqlStore) OutboxLockPartitions(ctx context.Context, conn *sql.Conn, parts []int) ([]int, error) {
	if len(parts) == 0 {
		return nil, nil
	}
	rows, err := conn.QueryContext(ctx, s.ob.lockPartitions, s.ints(parts), s.t.Outbox)
	if err != nil {
		return nil, s.interpret(err)
	}
	got, err := scanInts(rows)
	return got, s.interpret(err)
}

func (s *sqlStore) OutboxUnlockPartitions(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, s.ob.unlock)
	return s.interpret(err)
}

func (s *sqlStore) OutboxClaimUnkeyed(ctx context.Context, tx DBTX, afterID int64, limit int) ([]OutboxRow, error) {
	return s.queryOutboxRows(ctx, tx, limit, s.ob.claimUnkeyed, afterID, limit)
}

func (s *sqlStore) queryOutboxRows(ctx context.Context, db DBTX, capacity int, q string, args ...any) ([]OutboxRow, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.interpret(err)
	}
	out, err := scanOutboxRows(rows, capacity, s.times)
	return out, s.interpret(err)
}

func (s *sqlStore) OutboxDelete(ctx context.Context, tx DBTX, rows []OutboxRowRef, keep bool) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	stmts := s.ob.delete
	if keep {
		stmts = s.ob.deleteKeep
	}
	return s.execAll(ctx, tx, stmts, s.refs(rows))
}

func (s *sqlStore) OutboxRetry(ctx context.Context, tx DBTX, rows []OutboxRetryRow) error {
	if len(rows) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.ob.retry, retryArg(rows))
	return s.interpret(err)
}

func (s *sqlStore) OutboxBury(ctx context.Context, tx DBTX, rows []OutboxRetryRow) error {
	if len(rows) == 0 {
		return nil
	}
	_, err := s.execAll(ctx, tx, s.ob.bury, retryArg(rows))
	return err
}

func (s *sqlStore) OutboxPurgePublished(ctx context.Context, db DBTX, olderThan time.Duration, limit int) (int, error) {
	return s.execCount(ctx, db, "purge published outbox rows", s.ob.purgePublished, olderThan.Microseconds(), limit)
}

func (s *sqlStore) OutboxDeadList(ctx context.Context, db DBTX, afterID int64, limit int) ([]OutboxDeadRow, error) {
	rows, err := db.QueryContext(ctx, s.ob.deadList, afterID, limit)
	if err != nil {
		return nil, s.interpret(err)
	}
	out, err := scanOutboxDeadRows(rows, s.times)
	return out, s.interpret(err)
}

func (s *sqlStore) OutboxDeadRequeue(ctx context.Context, tx DBTX, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	if s.ob.deadLock != "" {
		// Lock the dead letters first so that two concurrent requeues cannot both copy a row.
		rows, err := tx.QueryContext(ctx, s.ob.deadLock, s.ids(ids))
		if err != nil {
			return 0, s.interpret(err)
		}
		if ids, err = scanInt64s(rows); err != nil {
			return 0, s.interpret(err)
		}
		if len(ids) == 0 {
			return 0, nil
		}
	}
	arg := s.ids(ids)
	var moved int64
	for i, q := range s.ob.deadRequeue {
		res, err := tx.ExecContext(ctx, q, arg)
		if err != nil {
			return 0, s.interpret(err)
		}
		if i == 0 { // the copy into the outbox
			moved, _ = res.RowsAffected()
		}
	}
	return moved, nil
}

func (s *sqlStore) OutboxDeadDelete(ctx context.Context, db DBTX, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	return s.execAll(ctx, db, []string{s.ob.deadDelete}, s.ids(ids))
}

func (s *sqlStore) OutboxCheckSchema(ctx context.Context, db DBTX) error {
	return s.checkQueries(ctx, db, "outbox", s.ob.checkOutbox, s.ob.checkDead, s.ob.checkPublished)
}

// scanOutboxRows reads rows; capacity is the most rows the query can return (bounded, it sizes the slice).
func scanOutboxRows(rows *sql.Rows, capacity int, ts timeScan) ([]OutboxRow, error) {
	defer rows.Close()
	var out []OutboxRow
	c := ts.newTime() // every Scan overwrites it
	var headers sql.NullString
	for rows.Next() {
		if out == nil { // sized on the first row: an empty poll allocates nothing
			out = make([]OutboxRow, 0, min(max(capacity, 1), 4096))
		}
		out = append(out, OutboxRow{})
		r := &out[len(out)-1] // scanned in place: no row escapes to the heap on its own
		if err := rows.Scan(&r.ID, &r.Partition, &r.Topic, &r.Key, &r.Tag, &r.ShardingKey, &r.Payload, &headers,
			&r.Attempts, c); err != nil {
			return nil, err
		}
		if headers.Valid {
			r.Headers = []byte(headers.String)
		}
		if r.Payload == nil {
			r.Payload = []byte{}
		}
		r.CreatedAt = ts.at(c)
	}
	return out, rows.Err()
}

func scanOutboxDeadRows(rows *sql.Rows, ts timeScan) ([]OutboxDeadRow, error) {
	defer rows.Close()
	var out []OutboxDeadRow
	for rows.Next() {
		var r OutboxDeadRow
		var headers, lastErr sql.NullString
		c, d := ts.newTime(), ts.newTime()
		if err := rows.Scan(&r.ID, &r.Partition, &r.Topic, &r.Key, &r.Tag, &r.ShardingKey, &r.Payload, &headers,
			&r.Attempts, c, &lastErr, d); err != nil {
			return nil, err
		}
		if headers.Valid {
			r.Headers = []byte(headers.String)
		}
		r.LastError = lastErr.String
		r.CreatedAt, r.DeadAt = ts.at(c), ts.at(d)
		out = append(out, r)
	}
	return out, rows.Err()
}

// checkColumns renders a statement that reads no rows but names every column txbox uses.
func checkColumns(cols, table, never string) string {
	return "SELECT " + cols + " FROM " + table + " WHERE " + never
}

// wrap adds what failed to an error.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
