package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
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

	// Claims lease rows: each claim takes due rows that no lease holds, sets their lease end to the database's
	// now + Lease (a keyed row's available_at, so that the not-due index finds it; an unkeyed row's lease_until,
	// which no index covers) and their claim_token to the batch's token, and commits before it returns. A leased
	// keyed row holds back every other row of its sharding key, earlier or later, until its lease ends; a row in
	// backoff or delayed holds back the later rows of its key. Rows are returned in id order. Payloads count
	// against Claim.MaxBytes in that order.

	// OutboxClaimKeyed leases, for each of p.Parts (which the caller has locked with OutboxLockPartitions), up
	// to p.PerPartition due rows in id order, leaving out every row that is held back; of those at most p.Limit
	// by id and within the byte budget. It takes no row locks to choose: the partition lock is what keeps other
	// claims of these partitions out.
	OutboxClaimKeyed(ctx context.Context, db TxBeginner, p *OutboxClaim) ([]OutboxRow, error)
	// OutboxClaimUnkeyed leases up to p.Limit due rows without a sharding key with id > p.AfterID, in id order
	// and within the byte budget, skipping rows other transactions hold (FOR UPDATE SKIP LOCKED).
	OutboxClaimUnkeyed(ctx context.Context, db TxBeginner, p *OutboxClaim) ([]OutboxRow, error)
	// OutboxRenew moves the lease end (available_at or lease_until) of rows still leased by token (lease not
	// ended) to now + lease and returns how many it renewed.
	OutboxRenew(ctx context.Context, db DBTX, token int64, rows []OutboxRowRef, lease time.Duration) (int, error)
	// OutboxFinish records a batch's outcome, touching only rows whose claim_token is still p.Token: it deletes
	// the published rows (with p.Keep, moves them to the published table), records failed attempts, moves rows
	// to the dead-letter table, releases rows (due now, nothing counted) and holds rows for a broker outage.
	// Several statements run in one transaction.
	OutboxFinish(ctx context.Context, db TxBeginner, p *OutboxFinish) (OutboxFinished, error)
	// OutboxResume makes up to limit rows of topic that OutboxFinish held for an outage due now, lowest ids
	// first, and returns how many it changed.
	OutboxResume(ctx context.Context, db DBTX, topic string, limit int) (int, error)

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

// TxBeginner is a DBTX that can begin transactions: a *sql.DB or a *sql.Conn.
type TxBeginner interface {
	DBTX
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

var (
	_ TxBeginner = (*sql.DB)(nil)
	_ TxBeginner = (*sql.Conn)(nil)
)

// OutboxClaim is what one claim takes and how it leases it.
type OutboxClaim struct {
	// Token marks the leased rows as the batch's; it must be positive.
	Token int64
	// Lease is how long the rows stay leased, from the database's now.
	Lease time.Duration
	// Limit is the most rows the claim takes.
	Limit int
	// MaxBytes is the payload budget: rows are taken in id order while the sum of their payload sizes stays
	// within it. Zero or less: no budget.
	MaxBytes int64
	// TakeOne takes the first row even when its payload alone exceeds MaxBytes.
	TakeOne bool
	// Parts and PerPartition are for OutboxClaimKeyed: the locked partitions and the most rows per partition.
	Parts        []int
	PerPartition int
	// AfterID is for OutboxClaimUnkeyed: only rows with a greater id.
	AfterID int64
}

// OutboxFinish is a batch's outcome, for OutboxFinish.
type OutboxFinish struct {
	Token     int64
	Published []OutboxRowRef   // deleted, or moved to the published table with Keep
	Keep      bool             //
	Retry     []OutboxRetryRow // attempts+1, last_error, due after Delay, lease ended
	Bury      []OutboxRetryRow // moved to the dead-letter table (attempts+1, last_error; Delay ignored)
	Release   []OutboxRowRef   // due now, lease ended, nothing counted
	Hold      []OutboxRowRef   // held for a broker outage: due after HoldFor, found by OutboxResume
	HoldFor   time.Duration
}

// OutboxFinished counts the rows OutboxFinish changed. A row missing from the counts was no longer leased by
// the token (its lease ended and another claim took it, or it was gone).
type OutboxFinished struct {
	Published, Buried, Updated int // Updated: retried, released and held rows
}

// OutboxRetryRow is one failed attempt: a retry after Delay, or a move to the dead-letter table (Delay ignored).
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
	// insertOne (and insertOneNotify) is the whole statement for one row.
	insertOne, insertOneNotify string

	prepareConn     string
	keyedPartitions string
	lockPartitions  string // args: partitions, outbox table name
	unlock          string

	// The claims (see OutboxClaimKeyed and OutboxClaimUnkeyed in each dialect's file).
	claimUnkeyed string
	claimKeyed   string // PostgreSQL: the statement; MySQL: one UNION branch per partition
	// MySQL only: lease the chosen rows (args: refs, lease µs, token).
	leaseKeyed, leaseUnkeyed string

	// renew: args refs, lease µs (keyed rows), lease µs (unkeyed rows), token.
	renew string
	// The finish statements take the rows (refs, or the JSON of retryArg) and the token. A list runs in order
	// and counts with its last statement. finishLock (MySQL) locks the batch's rows first when a list has
	// several statements.
	finishLock                           string
	finishDelete, finishKeep, finishBury []string
	finishUpdate                         string
	resumeSelect                         string // MySQL only: args topic, limit; then resume with the refs
	resume                               string // PostgreSQL: args topic, limit
	purgePublished                       string // args: microseconds, limit

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

// Finish operations on a leased row that stays in the outbox (refJSON.Op).
const (
	opRetry   = 1 // attempts+1, last_error, due after the delay
	opRelease = 2 // due now, nothing counted
	opHold    = 3 // held for a broker outage (claim_token -1), due after the delay
)

// refJSON is how rows travel into a statement: one JSON array that the statement joins (MySQL JSON_TABLE,
// PostgreSQL jsonb_to_recordset) to reach each row by primary key.
type refJSON struct {
	P  int   `json:"p"`
	ID int64 `json:"id"`
	Op int   `json:"op,omitempty"`
	// US is always sent: a retry with a delay under a microsecond is due now (available_at = now + 0), and
	// the statements would read a missing "us" as NULL, which fails the whole statement on available_at NOT
	// NULL.
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

// retryArg renders failed rows (op 0 for a move to the dead-letter table) as JSON.
func retryArg(rows []OutboxRetryRow, op int) []refJSON {
	js := make([]refJSON, len(rows))
	for i, r := range rows {
		js[i] = refJSON{P: r.Partition, ID: r.ID, Op: op, US: r.Delay.Microseconds(), Err: errorText(r.Error)}
	}
	return js
}

func refsOp(rows []OutboxRowRef, op int, delay time.Duration) []refJSON {
	js := make([]refJSON, len(rows))
	for i, r := range rows {
		js[i] = refJSON{P: r.Partition, ID: r.ID, Op: op, US: delay.Microseconds()}
	}
	return js
}

func jsonText(js []refJSON) string {
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

// claimArgs checks a claim's parameters and returns its budget (math.MaxInt64 for none).
func claimArgs(p *OutboxClaim) (int64, error) {
	if p.Token <= 0 {
		return 0, fmt.Errorf("claim: token must be positive, got %d", p.Token)
	}
	if p.Lease < time.Millisecond {
		return 0, fmt.Errorf("claim: lease must be at least 1ms, got %s", p.Lease)
	}
	if p.MaxBytes <= 0 {
		return math.MaxInt64, nil
	}
	return p.MaxBytes, nil
}

func (s *sqlStore) queryOutboxRows(ctx context.Context, db DBTX, capacity int, q string, args ...any) ([]OutboxRow, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.interpret(err)
	}
	out, err := scanOutboxRows(rows, capacity, s.times, false)
	return out, s.interpret(err)
}

func (s *sqlStore) OutboxRenew(ctx context.Context, db DBTX, token int64, rows []OutboxRowRef, lease time.Duration) (int, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	us := lease.Microseconds()
	return s.execCount(ctx, db, "renew lease", s.ob.renew, s.refs(rows), us, us, token)
}

func (s *sqlStore) OutboxFinish(ctx context.Context, db TxBeginner, p *OutboxFinish) (res OutboxFinished, err error) {
	type step struct {
		stmts []string
		arg   any
		n     *int
	}
	var steps []step
	if len(p.Published) > 0 {
		stmts := s.ob.finishDelete
		if p.Keep {
			stmts = s.ob.finishKeep
		}
		steps = append(steps, step{stmts, s.refs(p.Published), &res.Published})
	}
	if len(p.Bury) > 0 {
		steps = append(steps, step{s.ob.finishBury, jsonText(retryArg(p.Bury, 0)), &res.Buried})
	}
	if upd := slices.Concat(retryArg(p.Retry, opRetry), refsOp(p.Release, opRelease, 0), refsOp(p.Hold, opHold, p.HoldFor)); len(upd) > 0 {
		steps = append(steps, step{[]string{s.ob.finishUpdate}, jsonText(upd), &res.Updated})
	}
	stmts, multi := 0, false
	for _, st := range steps {
		stmts += len(st.stmts)
		multi = multi || len(st.stmts) > 1
	}
	if stmts == 0 {
		return res, nil
	}
	var ex DBTX = db
	if stmts > 1 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return res, fmt.Errorf("finish: begin: %w", s.interpret(err))
		}
		defer func() {
			if err != nil {
				_ = tx.Rollback()
			}
		}()
		ex = tx
		if multi && s.ob.finishLock != "" {
			// A list of statements (copy, then delete) must see the same rows: lock them so that no claim can take
			// a row whose lease ends in between.
			all := slices.Concat(p.Published, refsOf(p.Bury), refsOf(p.Retry), p.Release, p.Hold)
			rows, err := tx.QueryContext(ctx, s.ob.finishLock, refsArg(all), p.Token)
			if err == nil {
				_, err = scanInt64s(rows)
			}
			if err != nil {
				return res, fmt.Errorf("finish: lock rows: %w", s.interpret(err))
			}
		}
	}
	for _, st := range steps {
		n, err := s.execAll(ctx, ex, st.stmts, st.arg, p.Token)
		if err != nil {
			return res, fmt.Errorf("finish: %w", err)
		}
		*st.n = int(n)
	}
	if tx, ok := ex.(*sql.Tx); ok {
		if err := tx.Commit(); err != nil {
			return res, fmt.Errorf("finish: commit: %w", s.interpret(err))
		}
	}
	return res, nil
}

func refsOf(rows []OutboxRetryRow) []OutboxRowRef {
	out := make([]OutboxRowRef, len(rows))
	for i, r := range rows {
		out[i] = OutboxRowRef{ID: r.ID, Partition: r.Partition}
	}
	return out
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

// scanOutboxRows reads rows; capacity is the most rows the query can return (bounded, it sizes the slice). With
// cut, a NULL payload (a row past a claim's byte budget) ends the result: that row and the rest are left out.
func scanOutboxRows(rows *sql.Rows, capacity int, ts timeScan, cut bool) ([]OutboxRow, error) {
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
		if r.Payload == nil {
			if cut {
				out = out[:len(out)-1]
				break
			}
			r.Payload = []byte{}
		}
		if headers.Valid {
			r.Headers = []byte(headers.String)
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

// sortByID puts rows in id order (PostgreSQL's UPDATE ... RETURNING returns them in any order).
func sortByID(rows []OutboxRow) {
	slices.SortFunc(rows, func(a, b OutboxRow) int { return cmp.Compare(a.ID, b.ID) })
}
