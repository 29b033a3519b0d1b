package dialect

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ErrNotifyUnsupported is returned by OutboxListen when the dialect or driver cannot deliver notifications
// (MySQL; PostgreSQL through lib/pq, which reads notifications only while a query runs). Callers fall back to
// polling.
var ErrNotifyUnsupported = errors.New("dialect: notifications not supported by this database or driver")

// OutboxStore is the SQL the outbox and relay packages run. Each dialect implements it in its
// <dialect>_outbox.go file. Table names in the Params are validated and quoted by the dialect.
//
// Rows carry a partition: hash(sharding key) mod a fixed count, computed by package outbox, or -1 for rows
// without a sharding key. Keyed partitions are owned by one relay connection at a time through session-level
// advisory locks (OutboxLockPartitions); unkeyed rows are claimed with FOR UPDATE SKIP LOCKED.
type OutboxStore interface {
	// OutboxInsert writes p.Rows in one statement (and, on PostgreSQL with p.Channel set, sends a
	// transactional NOTIFY in the same round trip).
	OutboxInsert(ctx context.Context, db DBTX, p *OutboxInsertParams) error

	// OutboxPrepareConn readies a connection a relay worker keeps for its batches: READ COMMITTED for every
	// transaction of the session (on MySQL the claim then locks no gaps, which would block producers, and
	// releases rows it did not match). The session state stays with the connection, so the caller must not
	// hand it back to the pool.
	OutboxPrepareConn(ctx context.Context, conn *sql.Conn) error
	// OutboxKeyedPartitions returns the partitions that hold at least one keyed row, in ascending order, using
	// index dives on (part, id) rather than a scan.
	OutboxKeyedPartitions(ctx context.Context, db DBTX, p *OutboxKeyedPartitionsParams) ([]int, error)
	// OutboxLockPartitions tries, without waiting, to take the advisory lock of each of p.Partitions on conn
	// and returns the ones it got. The locks belong to the connection's session: they are released by
	// OutboxUnlockPartitions or when the connection dies.
	OutboxLockPartitions(ctx context.Context, conn *sql.Conn, p *OutboxPartitionsParams) ([]int, error)
	// OutboxUnlockPartitions releases every advisory lock the session of conn holds.
	OutboxUnlockPartitions(ctx context.Context, conn *sql.Conn, p *OutboxPartitionsParams) error

	// OutboxSelectKeyed returns, for each partition in p.Partitions (which the caller owns), up to
	// p.PerPartition due rows in id order, leaving out every row that has an earlier row of its sharding key
	// that is not due (a row in backoff or delayed holds back the rest of its key). It takes no row locks: the
	// partition lock is the claim.
	OutboxSelectKeyed(ctx context.Context, tx DBTX, p *OutboxSelectKeyedParams) ([]OutboxRow, error)
	// OutboxClaimUnkeyed locks and returns up to p.Limit due rows without a sharding key with id > p.AfterID,
	// in id order, skipping rows other transactions hold (FOR UPDATE SKIP LOCKED). Run it in a transaction.
	OutboxClaimUnkeyed(ctx context.Context, tx DBTX, p *OutboxClaimUnkeyedParams) ([]OutboxRow, error)

	// OutboxDelete deletes rows by id through primary-key lookups only (never a scan that could lock rows
	// other relays claimed) and returns how many it deleted. With p.PublishedTable it moves them there first.
	OutboxDelete(ctx context.Context, tx DBTX, p *OutboxDeleteParams) (int64, error)
	// OutboxRetry records a failed attempt on each row: attempts+1, last_error, available_at = now + Delay.
	OutboxRetry(ctx context.Context, tx DBTX, p *OutboxRetryParams) error
	// OutboxPurgePublished deletes up to p.Limit rows of p.PublishedTable published more than p.OlderThan ago,
	// oldest first, and returns how many it deleted.
	OutboxPurgePublished(ctx context.Context, db DBTX, p *OutboxPurgePublishedParams) (int, error)
	// OutboxBury moves rows to the dead-letter table with their last error and deletes them from the outbox.
	OutboxBury(ctx context.Context, tx DBTX, p *OutboxBuryParams) error

	// OutboxDeadList lists dead letters with id > p.AfterID in id order, at most p.Limit.
	OutboxDeadList(ctx context.Context, db DBTX, p *OutboxDeadListParams) ([]OutboxDeadRow, error)
	// OutboxDeadRequeue copies the dead letters p.IDs back into the outbox as new rows (new ids, attempts 0,
	// due now) and deletes them from the dead-letter table. Run it in a transaction. It returns how many moved.
	OutboxDeadRequeue(ctx context.Context, tx DBTX, p *OutboxDeadRequeueParams) (int64, error)
	// OutboxDeadDelete deletes the dead letters p.IDs and returns how many it deleted.
	OutboxDeadDelete(ctx context.Context, db DBTX, p *OutboxDeadDeleteParams) (int64, error)

	// OutboxListen subscribes conn to p.Channel and returns a listener whose Wait returns when a notification
	// arrives. It returns an error wrapping ErrNotifyUnsupported when notifications cannot be received.
	OutboxListen(ctx context.Context, conn *sql.Conn, p *OutboxListenParams) (OutboxListener, error)
}

// OutboxListener waits for outbox notifications on its connection.
type OutboxListener interface {
	// Wait blocks until a notification arrives (nil), ctx ends, or the connection fails.
	Wait(ctx context.Context) error
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

// OutboxInsertParams are the arguments of OutboxInsert.
type OutboxInsertParams struct {
	Table   string
	Channel string // PostgreSQL: NOTIFY this channel in the same statement; "" sends none. Ignored on MySQL.
	Rows    []OutboxInsertRow
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

// OutboxKeyedPartitionsParams are the arguments of OutboxKeyedPartitions.
type OutboxKeyedPartitionsParams struct {
	Table string
}

// OutboxPartitionsParams are the arguments of OutboxLockPartitions and OutboxUnlockPartitions.
type OutboxPartitionsParams struct {
	Table      string // the lock names include the database/schema and this table
	Partitions []int
}

// OutboxSelectKeyedParams are the arguments of OutboxSelectKeyed.
type OutboxSelectKeyedParams struct {
	Table        string
	Partitions   []int
	PerPartition int
}

// OutboxClaimUnkeyedParams are the arguments of OutboxClaimUnkeyed.
type OutboxClaimUnkeyedParams struct {
	Table   string
	AfterID int64
	Limit   int
}

// OutboxRowRef names an outbox row. MySQL clusters the outbox on (part, id), so it needs both to reach a row
// through the primary key.
type OutboxRowRef struct {
	ID        int64
	Partition int
}

// OutboxDeleteParams are the arguments of OutboxDelete.
type OutboxDeleteParams struct {
	Table string
	Rows  []OutboxRowRef
	// PublishedTable, when set, keeps the rows: they are moved there with published_at = now instead of only
	// deleted (relay.Config.Retention).
	PublishedTable string
}

// OutboxPurgePublishedParams are the arguments of OutboxPurgePublished.
type OutboxPurgePublishedParams struct {
	PublishedTable string
	OlderThan      time.Duration // rows published longer ago than this go
	Limit          int
}

// OutboxRetryRow is one failed attempt.
type OutboxRetryRow struct {
	ID        int64
	Partition int
	Delay     time.Duration
	Error     string
}

// OutboxRetryParams are the arguments of OutboxRetry.
type OutboxRetryParams struct {
	Table string
	Rows  []OutboxRetryRow
}

// OutboxBuryRow is one row going to the dead-letter table. Attempts counts the failure that buried it.
type OutboxBuryRow struct {
	ID        int64
	Partition int
	Error     string
}

// OutboxBuryParams are the arguments of OutboxBury.
type OutboxBuryParams struct {
	Table     string
	DeadTable string
	Rows      []OutboxBuryRow
}

// OutboxDeadRow is a dead letter.
type OutboxDeadRow struct {
	OutboxRow
	LastError string
	DeadAt    time.Time
}

// OutboxDeadListParams are the arguments of OutboxDeadList.
type OutboxDeadListParams struct {
	DeadTable string
	AfterID   int64
	Limit     int
}

// OutboxDeadRequeueParams are the arguments of OutboxDeadRequeue.
type OutboxDeadRequeueParams struct {
	Table     string
	DeadTable string
	IDs       []int64
}

// OutboxDeadDeleteParams are the arguments of OutboxDeadDelete.
type OutboxDeadDeleteParams struct {
	DeadTable string
	IDs       []int64
}

// OutboxListenParams are the arguments of OutboxListen.
type OutboxListenParams struct {
	Channel string
}

// outboxCols are the columns a relay reads, in the order scanOutboxRow expects.
const outboxCols = "id, part, topic, msg_key, tag, sharding_key, payload, headers, attempts, created_at"

// outboxDeadCols are the dead-letter columns, in the order scanOutboxDeadRow expects.
const outboxDeadCols = outboxCols + ", last_error, dead_at"

// maxErrorBytes bounds last_error: errors can embed whole broker responses.
const maxErrorBytes = 2000

// clipError shortens s to at most maxErrorBytes without splitting a UTF-8 sequence.
func clipError(s string) string {
	if len(s) <= maxErrorBytes {
		return s
	}
	cut := maxErrorBytes
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}

// scanOutboxRows reads rows; capacity is the most rows the query can return (bounded, it sizes the slice).
func scanOutboxRows(rows *sql.Rows, capacity int, created func() sql.Scanner, at func(sql.Scanner) time.Time) ([]OutboxRow, error) {
	defer rows.Close()
	var out []OutboxRow
	c := created() // every Scan overwrites it
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
		r.CreatedAt = at(c)
	}
	return out, rows.Err()
}

func scanOutboxDeadRows(rows *sql.Rows, newTime func() sql.Scanner, at func(sql.Scanner) time.Time) ([]OutboxDeadRow, error) {
	defer rows.Close()
	var out []OutboxDeadRow
	for rows.Next() {
		var r OutboxDeadRow
		var headers, lastErr sql.NullString
		c, d := newTime(), newTime()
		if err := rows.Scan(&r.ID, &r.Partition, &r.Topic, &r.Key, &r.Tag, &r.ShardingKey, &r.Payload, &headers,
			&r.Attempts, c, &lastErr, d); err != nil {
			return nil, err
		}
		if headers.Valid {
			r.Headers = []byte(headers.String)
		}
		r.LastError = lastErr.String
		r.CreatedAt, r.DeadAt = at(c), at(d)
		out = append(out, r)
	}
	return out, rows.Err()
}

// quoteTables validates and quotes each name, naming the failing one.
func quoteTables(quote func(string) (string, error), names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		q, err := quote(n)
		if err != nil {
			return nil, err
		}
		out[i] = q
	}
	return out, nil
}

func scanInts(rows *sql.Rows) ([]int, error) {
	defer rows.Close()
	var out []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}
