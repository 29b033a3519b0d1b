package dialect

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// InboxStore is the SQL the inbox package runs. Each dialect implements it in its <dialect>_inbox.go file.
// Table names in the Params are validated and quoted by the dialect (the rendered statements are cached per
// table set). Instants the database stores come from the database's clock unless a Params field says otherwise.
type InboxStore interface {
	// InboxClaim records (consumer, key, fingerprint) in the inbox table inside tx, which the caller goes on to
	// use for the handler. When a transaction that recorded the same key is still open, it waits for that
	// transaction to end (both databases block on the primary key): if it committed, the result reports the
	// existing row (Inserted false, its fingerprint and parked flag); if it rolled back, the key is recorded
	// here. It never depends on rows-affected counts, so clientFoundRows and similar DSN options change nothing.
	InboxClaim(ctx context.Context, tx DBTX, p *InboxClaimParams) (InboxClaimResult, error)

	// InboxRecordFailure adds one failed attempt for (consumer, key) in the attempts table, stores the error
	// text, and returns the new count. Run it in a short transaction of its own, not the handler's.
	InboxRecordFailure(ctx context.Context, tx DBTX, p *InboxRecordFailureParams) (int, error)
	// InboxPark moves a message that failed too often to the dead-letter table: it records the key in the inbox
	// table as parked, writes the dead-letter row and removes the attempts row. When the key is already recorded
	// (another delivery committed it meanwhile) it changes nothing and returns false. Run it in a transaction.
	InboxPark(ctx context.Context, tx DBTX, p *InboxParkParams) (bool, error)

	// InboxDeadGet returns the dead letter p.ID of p.Consumer, locked for update when p.ForUpdate, or
	// found == false.
	InboxDeadGet(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (row InboxDeadRow, found bool, err error)
	// InboxDeadDelete deletes the dead letter p.ID of p.Consumer and reports whether it existed.
	InboxDeadDelete(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (bool, error)
	// InboxDeadList lists p.Consumer's dead letters with id > p.AfterID (and key p.Key when set) in id order,
	// at most p.Limit.
	InboxDeadList(ctx context.Context, db DBTX, p *InboxDeadListParams) ([]InboxDeadRow, error)
	// InboxSettle marks (consumer, key) as processed for a replayed or dropped dead letter: a parked row becomes
	// an ordinary recorded key (received now), a missing row is inserted. It locks the row. When the key is
	// already recorded and not parked, it changes nothing and returns false: the message was processed.
	InboxSettle(ctx context.Context, tx DBTX, p *InboxSettleParams) (bool, error)

	// InboxPurge deletes up to p.Limit of p.Consumer's recorded keys received more than p.OlderThan ago, oldest
	// first, never parked ones, and returns how many it deleted. It walks the purge index and locks only the
	// rows it deletes; run it in a short READ COMMITTED transaction per batch.
	InboxPurge(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error)
	// InboxPurgeAttempts deletes up to p.Limit attempts rows of p.Consumer last updated more than p.OlderThan
	// ago (counters of keys that stopped failing) and returns how many it deleted.
	InboxPurgeAttempts(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error)

	// InboxCheckSchema returns an error wrapping ErrSchemaMissing when one of the inbox tables or columns
	// txbox uses does not exist.
	InboxCheckSchema(ctx context.Context, db DBTX, t InboxTables) error
}

// InboxTables names the inbox tables ("schema.table" allowed). Every name must pass ValidateIdent.
type InboxTables struct {
	Inbox    string // e.g. txbox_inbox
	Attempts string // e.g. txbox_inbox_attempts
	Dead     string // e.g. txbox_inbox_dead
}

// InboxClaimParams are the arguments of InboxClaim.
type InboxClaimParams struct {
	Tables      InboxTables
	Consumer    string
	Key         string
	Fingerprint []byte // 32 bytes (SHA-256 of the payload)
	// ClearAttempts also deletes the key's attempts row in tx, when a failure may have been counted before.
	ClearAttempts bool
	// ReceivedAt overrides the database clock (tests of retention); zero means now.
	ReceivedAt time.Time
}

// InboxClaimResult tells what InboxClaim found.
type InboxClaimResult struct {
	Inserted bool // the key is now recorded in the caller's transaction
	// Of the existing row, when Inserted is false:
	Fingerprint []byte
	Parked      bool
}

// InboxRecordFailureParams are the arguments of InboxRecordFailure.
type InboxRecordFailureParams struct {
	Tables    InboxTables
	Consumer  string
	Key       string
	LastError string // valid UTF-8 without NUL bytes, already shortened by the caller
}

// InboxParkParams are the arguments of InboxPark.
type InboxParkParams struct {
	Tables      InboxTables
	Consumer    string
	Key         string
	Fingerprint []byte
	Payload     []byte
	Headers     []byte // JSON object of strings, or nil
	Topic       string
	MessageID   string
	Attempts    int
	LastError   string
}

// InboxDeadGetParams are the arguments of InboxDeadGet and InboxDeadDelete.
type InboxDeadGetParams struct {
	Tables    InboxTables
	Consumer  string
	ID        int64
	ForUpdate bool
}

// InboxDeadListParams are the arguments of InboxDeadList.
type InboxDeadListParams struct {
	Tables   InboxTables
	Consumer string
	Key      string // only this key when not empty
	AfterID  int64
	Limit    int
}

// InboxDeadRow is one dead letter.
type InboxDeadRow struct {
	ID          int64
	Consumer    string
	Key         string
	Fingerprint []byte
	Payload     []byte
	Headers     []byte // JSON object of strings, or nil
	Topic       string
	MessageID   string
	Attempts    int
	LastError   string
	ParkedAt    time.Time
}

// InboxSettleParams are the arguments of InboxSettle.
type InboxSettleParams struct {
	Tables      InboxTables
	Consumer    string
	Key         string
	Fingerprint []byte
}

// InboxPurgeParams are the arguments of InboxPurge and InboxPurgeAttempts.
type InboxPurgeParams struct {
	Tables    InboxTables
	Consumer  string
	OlderThan time.Duration
	Limit     int
}

// inboxQuoted holds the quoted table names of an InboxTables.
type inboxQuoted struct{ inbox, attempts, dead string }

func quoteInboxTables(t InboxTables, quote func(string) (string, error)) (inboxQuoted, error) {
	var q inboxQuoted
	var err error
	if q.inbox, err = quote(t.Inbox); err != nil {
		return q, fmt.Errorf("inbox table: %w", err)
	}
	if q.attempts, err = quote(t.Attempts); err != nil {
		return q, fmt.Errorf("inbox attempts table: %w", err)
	}
	if q.dead, err = quote(t.Dead); err != nil {
		return q, fmt.Errorf("inbox dead-letter table: %w", err)
	}
	return q, nil
}

// sqlCache keeps statements rendered for one table set, so that the hot path (InboxClaim) builds no strings.
// A process uses a handful of table sets; the cache is never pruned.
type sqlCache[T any] struct{ m sync.Map }

func (c *sqlCache[T]) get(t InboxTables, build func(InboxTables) (*T, error)) (*T, error) {
	if v, ok := c.m.Load(t); ok {
		return v.(*T), nil
	}
	s, err := build(t)
	if err != nil {
		return nil, err
	}
	v, _ := c.m.LoadOrStore(t, s)
	return v.(*T), nil
}

// retryableError marks a race the dialect detected itself (a row that vanished between two statements) as
// worth retrying in a new transaction.
func retryableError(msg string) error { return &Error{Kind: KindRetryable, Err: errors.New(msg)} }

// nullIfEmpty passes an empty byte slice as SQL NULL.
func nullIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// execCount runs a DELETE and returns how many rows it deleted.
func execCount(ctx context.Context, db DBTX, what, q string, args ...any) (int, error) {
	res, err := db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return int(n), nil
}

// checkQueries runs statements that read no rows, only to see that tables and columns exist.
func checkQueries(ctx context.Context, db DBTX, queries ...string) error {
	for _, q := range queries {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return fmt.Errorf("check inbox schema: %w", interpretError(err))
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("check inbox schema: %w", interpretError(err))
		}
	}
	return nil
}
