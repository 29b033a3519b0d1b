package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/txbox/txbox/dialect"
)

// DBTX is what the store runs statements on: a transaction, a connection or a pool.
type DBTX = dialect.DBTX

// ErrNotifyUnsupported is returned by OutboxListen when the dialect or driver cannot deliver notifications
// (MySQL; PostgreSQL through lib/pq, which reads notifications only while a query runs). Callers fall back to
// polling.
var ErrNotifyUnsupported = errors.New("notifications not supported by this database or driver")

// Store is all of txbox's SQL for one dialect and one installation's tables. New renders every statement once;
// the methods only bind arguments. A Store is safe for concurrent use.
//
// Rows of the outbox carry a partition: hash(sharding key) mod a fixed count, computed by package outbox, or -1
// for rows without a sharding key. A relay claims rows under a lease that commits with the claim (available_at
// = lease end, claim_token = the batch's token); keyed partitions are claimed by one relay connection at a time
// through session-level advisory locks (OutboxLockPartitions), unkeyed rows with FOR UPDATE SKIP LOCKED.
type Store interface {
	// Dialect and Tables are what the Store was made for.
	Dialect() dialect.Dialect
	Tables() dialect.Tables

	FleetStore
	OutboxStore
	InboxStore
	AdminStore
	EffectStore
	PartitionStore
	ConvertStore

	// Stats reads the numbers operators look at: backlog, lag, dead letters, inbox size.
	Stats(ctx context.Context, db DBTX) (*Stats, error)

	// EnsureSchema creates the schema (MySQL: database) of a schema-qualified prefix when it does not exist. It
	// does nothing for a prefix without a schema, and needs no privilege when the schema exists.
	EnsureSchema(ctx context.Context, db DBTX) error

	// MigrationLock takes a session-level lock that serialises the migrations of this installation across
	// processes; MigrationUnlock releases it. Both must run on the same connection.
	MigrationLock(ctx context.Context, conn *sql.Conn) error
	MigrationUnlock(ctx context.Context, conn *sql.Conn) error
}

// New returns the Store of d for the tables t (see dialect.TablesFor).
func New(d dialect.Dialect, t dialect.Tables) (Store, error) {
	if d == nil {
		return nil, errors.New("nil dialect")
	}
	if _, err := dialect.TablesFor(t.Prefix); err != nil {
		return nil, err
	}
	switch d.Name() {
	case "mysql":
		return newMySQL(d, t)
	case "postgres":
		return newPostgres(d, t)
	}
	return nil, fmt.Errorf("unsupported dialect %q", d.Name())
}

// quoted holds the quoted table names of one installation.
type quoted struct {
	outbox, outboxDead, outboxPublished, inbox, inboxAttempts, inboxDead string
	effects, inboxKeys, partitions                                       string
}

func quoteTables(d dialect.Dialect, t dialect.Tables) (quoted, error) {
	var q quoted
	for _, n := range []struct {
		dst  *string
		name string
	}{
		{&q.outbox, t.Outbox}, {&q.outboxDead, t.OutboxDead}, {&q.outboxPublished, t.OutboxPublished},
		{&q.inbox, t.Inbox}, {&q.inboxAttempts, t.InboxAttempts}, {&q.inboxDead, t.InboxDead},
		{&q.effects, t.Effects}, {&q.inboxKeys, t.InboxKeys}, {&q.partitions, t.Partitions},
	} {
		s, err := d.QuoteIdent(n.name)
		if err != nil {
			return q, err
		}
		*n.dst = s
	}
	return q, nil
}

// newSQLStore quotes t's names and renders what both dialects render alike: the schema statements (createSchema
// is followed by the quoted schema) and the stats, whose first statement is outboxSummary followed by the outbox.
func newSQLStore(d dialect.Dialect, t dialect.Tables, createSchema, schemaExists, outboxSummary string) (sqlStore, error) {
	q, err := quoteTables(d, t)
	if err != nil {
		return sqlStore{}, err
	}
	s := sqlStore{d: d, t: t, q: q, schemaExists: schemaExists}
	if schema := t.Schema(); schema != "" {
		qs, err := d.QuoteIdent(schema)
		if err != nil {
			return sqlStore{}, err
		}
		s.createSchema = createSchema + qs
	}
	s.st = statsQueries{
		outboxSummary: outboxSummary + q.outbox,
		outboxTopics:  "SELECT topic, COUNT(*) FROM " + q.outbox + " GROUP BY topic",
		outboxDead:    "SELECT topic, COUNT(*) FROM " + q.outboxDead + " GROUP BY topic",
		// Both layouts' tables: a key recorded in two partitions (near a boundary) or, while the inbox converts,
		// in both tables counts twice.
		inboxKeys: "SELECT consumer, COUNT(*) FROM (SELECT consumer FROM " + q.inbox + " UNION ALL SELECT consumer FROM " +
			q.inboxKeys + ") AS k GROUP BY consumer",
		inboxDead: "SELECT consumer, COUNT(*) FROM " + q.inboxDead + " GROUP BY consumer",
	}
	return s, nil
}

// sqlStore is what both dialects share: the rendered statements and the Go around the statements whose text
// is all that differs. Each dialect embeds it, sets the hooks and adds the methods whose Go differs.
type sqlStore struct {
	d       dialect.Dialect
	t       dialect.Tables
	q       quoted
	channel string // PostgreSQL NOTIFY channel of the outbox

	ob outboxSQL
	ib inboxSQL
	ks keysSQL
	pt partitionSQL
	fx effectSQL
	fl fleetSQL
	st statsQueries
	// schemaExists counts the schemas named by its argument; createSchema is rendered for the prefix's schema.
	schemaExists, createSchema string

	times timeScan
	// ids and ints render a list of ids or partitions as one statement argument.
	ids  func([]int64) any
	ints func([]int) any
	// refs renders outbox row references for the statements that reach rows by primary key.
	refs func([]OutboxRowRef) any
	// jsonArg passes a JSON document to a JSON/JSONB column.
	jsonArg func([]byte) any
	// timeArg passes an instant the database stores as UTC.
	timeArg func(time.Time) any
	// insertNew runs an INSERT that may collide with an existing row and reports whether it inserted: a
	// PostgreSQL INSERT ... ON CONFLICT DO NOTHING whose row count is the answer, a MySQL INSERT whose
	// duplicate-key error (which rolls back only the statement) is the answer.
	insertNew func(ctx context.Context, tx DBTX, q string, args ...any) (bool, error)
}

func (s *sqlStore) Dialect() dialect.Dialect { return s.d }
func (s *sqlStore) Tables() dialect.Tables   { return s.t }

func (s *sqlStore) interpret(err error) error { return s.d.InterpretError(err) }

// NotifyChannel is the PostgreSQL notification channel of an outbox table: the table name with '.' replaced by
// '_', hashed when that would exceed PostgreSQL's 63-byte identifier limit.
func NotifyChannel(table string) string {
	ch := strings.ReplaceAll(table, ".", "_")
	if len(ch) <= dialect.MaxIdentLen {
		return ch
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(table))
	return fmt.Sprintf("txbox_outbox_%016x", h.Sum64())
}

func (s *sqlStore) EnsureSchema(ctx context.Context, db DBTX) error {
	schema := s.t.Schema()
	if schema == "" {
		return nil
	}
	var n int
	if err := db.QueryRowContext(ctx, s.schemaExists, schema).Scan(&n); err != nil {
		return fmt.Errorf("look for schema %s: %w", schema, s.interpret(err))
	}
	if n > 0 {
		return nil
	}
	if _, err := db.ExecContext(ctx, s.createSchema); err != nil {
		return fmt.Errorf("create schema %s: %w", schema, s.interpret(err))
	}
	return nil
}

// execCount runs a statement and returns how many rows it changed.
func (s *sqlStore) execCount(ctx context.Context, db DBTX, what, q string, args ...any) (int, error) {
	res, err := db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, s.interpret(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return int(n), nil
}

// checkQueries runs statements that read no rows, only to see that tables and columns exist.
func (s *sqlStore) checkQueries(ctx context.Context, db DBTX, what string, queries ...string) error {
	for _, q := range queries {
		rows, err := db.QueryContext(ctx, q)
		if err == nil {
			err = rows.Close()
		}
		if err != nil {
			return fmt.Errorf("check %s schema: %w", what, s.interpret(err))
		}
	}
	return nil
}

// retryableError marks a race the store detected itself (a row that vanished between two statements) as worth
// retrying in a new transaction.
func retryableError(msg string) error {
	return &dialect.Error{Kind: dialect.KindRetryable, Err: errors.New(msg)}
}

// timeScan reads a dialect's timestamp column as UTC: newTime makes a scanner, at reads it.
type timeScan struct {
	newTime func() sql.Scanner
	at      func(sql.Scanner) time.Time
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

func scanInt64s(rows *sql.Rows) ([]int64, error) {
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// maxErrorBytes bounds the outbox's last_error: errors can embed whole broker responses.
const maxErrorBytes = 2000

// errorText makes an error string storable in a TEXT column on both databases: no NUL bytes (PostgreSQL rejects
// them), at most maxErrorBytes without splitting a UTF-8 sequence.
func errorText(s string) string {
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) <= maxErrorBytes {
		return s
	}
	cut := maxErrorBytes
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut]
}
