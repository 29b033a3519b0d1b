package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// InboxStore is the SQL the inbox package runs. Instants the database stores come from the database's clock
// unless a Params field says otherwise.
type InboxStore interface {
	// InboxClaim records (consumer, key, fingerprint) in the inbox table inside tx, which the caller goes on to
	// use for the handler. When a transaction that recorded the same key is still open, it waits for that
	// transaction to end (both databases block on the primary key): if it committed, the result reports the
	// existing row (Inserted false, its fingerprint and parked flag); if it rolled back, the key is recorded
	// here. It never depends on rows-affected counts, so clientFoundRows and similar DSN options change nothing.
	InboxClaim(ctx context.Context, tx DBTX, p *InboxClaimParams) (InboxClaimResult, error)

	// InboxSavepoint sets a savepoint in tx, before one delivery of a batch; InboxRollbackToSavepoint undoes
	// everything tx did since the latest one (that delivery's key and its handler's writes) and leaves the
	// transaction usable, also after a failed statement on PostgreSQL. Savepoints are never released: a new one
	// replaces (MySQL) or shadows (PostgreSQL) the one before, a round trip saved per delivery.
	InboxSavepoint(ctx context.Context, tx DBTX) error
	InboxRollbackToSavepoint(ctx context.Context, tx DBTX) error

	// InboxRecordFailure adds one failed attempt for (consumer, key) in the attempts table, stores the error
	// text, and returns the new count. Run it in a short transaction of its own, not the handler's.
	InboxRecordFailure(ctx context.Context, tx DBTX, p *InboxRecordFailureParams) (int, error)
	// InboxPark moves a message that failed too often to the dead-letter table: it records the key in the inbox
	// table as parked, writes the dead-letter row and removes the attempts row. When the key is already recorded
	// (another delivery committed it meanwhile) it changes nothing and returns false. Run it in a transaction.
	//
	// A dead letter the database cannot hold whole is cut to fit: on MySQL the statement must fit the server's
	// max_allowed_packet (read at every park) and headers a MEDIUMBLOB, so the payload keeps its longest prefix
	// that fits and headers that do not fit are dropped; the row then records the delivered sizes (payload_bytes,
	// headers_bytes), which InboxDeadRow reports. PostgreSQL stores the message whole. With p.Minimal, neither
	// payload nor headers are stored, only their sizes: the caller's last resort when the database refused the
	// row anyway.
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
	InboxSettle(ctx context.Context, tx DBTX, p *InboxKeyParams) (bool, error)
	// InboxUnpark deletes (consumer, key) from the inbox table when it is recorded as parked, so that the next
	// delivery of the key runs the handler, and reports whether it deleted it. A key recorded as processed is
	// left alone (its next delivery stays a duplicate). Run it in the transaction that deletes the dead letter.
	InboxUnpark(ctx context.Context, tx DBTX, p *InboxKeyParams) (bool, error)

	// InboxPurge deletes up to p.Limit of p.Consumer's recorded keys received more than p.OlderThan ago, oldest
	// first, never parked ones, and returns how many it deleted. It walks the purge index and locks only the
	// rows it deletes; run it in a short READ COMMITTED transaction per batch.
	InboxPurge(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error)
	// InboxPurgeAttempts deletes up to p.Limit attempts rows of p.Consumer last updated more than p.OlderThan
	// ago (counters of keys that stopped failing) and returns how many it deleted.
	InboxPurgeAttempts(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error)

	// InboxLegacyKeys reports whether <prefix>_inbox holds any key (one index probe).
	InboxLegacyKeys(ctx context.Context, db DBTX) (bool, error)

	// InboxCheckSchema returns an error wrapping dialect.ErrSchemaMissing when one of the inbox tables or
	// columns txbox uses does not exist.
	InboxCheckSchema(ctx context.Context, db DBTX) error
}

// InboxClaimParams are the arguments of InboxClaim.
type InboxClaimParams struct {
	Consumer    string
	Key         string
	Fingerprint []byte // 32 bytes (SHA-256 of the payload)
	// ClearAttempts also deletes the key's attempts row in tx, when a failure may have been counted before.
	ClearAttempts bool
	// ReceivedAt overrides the database clock (tests of retention); zero means now.
	ReceivedAt time.Time
	// Keys is the partitioned layout; nil records the key in <prefix>_inbox.
	Keys *KeysLayout
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
	Consumer  string
	Key       string
	LastError string // valid UTF-8 without NUL bytes, already shortened by the caller
}

// InboxParkParams are the arguments of InboxPark.
type InboxParkParams struct {
	Consumer    string
	Key         string
	Fingerprint []byte
	Payload     []byte
	Headers     []byte // JSON object of strings, or nil
	Topic       string
	MessageID   string
	Attempts    int
	LastError   string
	// Minimal stores neither payload nor headers, only their sizes.
	Minimal bool
	// PayloadBytes is the delivered payload's length when Payload is only its beginning (the caller cut it);
	// 0 when Payload is whole.
	PayloadBytes int64
	// Keys is the partitioned layout; nil records the key in <prefix>_inbox.
	Keys *KeysLayout
}

// InboxDeadGetParams are the arguments of InboxDeadGet and InboxDeadDelete.
type InboxDeadGetParams struct {
	Consumer  string
	ID        int64
	ForUpdate bool
}

// InboxDeadListParams are the arguments of InboxDeadList.
type InboxDeadListParams struct {
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
	// PayloadBytes and HeadersBytes are the delivered payload's length and the headers' length as JSON when
	// InboxPark had to cut them (Payload is then a prefix, Headers nil); 0 when they are stored whole.
	PayloadBytes int64
	HeadersBytes int64
}

// InboxKeyParams name one recorded key, for InboxSettle (which records Fingerprint when it inserts) and
// InboxUnpark.
type InboxKeyParams struct {
	Consumer    string
	Key         string
	Fingerprint []byte
	// Keys is the partitioned layout; nil: the key is in <prefix>_inbox.
	Keys *KeysLayout
}

// InboxPurgeParams are the arguments of InboxPurge and InboxPurgeAttempts.
type InboxPurgeParams struct {
	Consumer  string
	OlderThan time.Duration
	Limit     int
}

// inboxSQL holds a dialect's inbox statements for one table set.
type inboxSQL struct {
	claim, claimRead, clearAttempts string
	// recordFailure upserts the attempts row; on PostgreSQL it returns the count, on MySQL readAttempts reads it.
	recordFailure, readAttempts string
	// parkDead takes consumer, key, fingerprint, payload, headers, topic, message id, attempts, last error,
	// payload bytes and headers bytes. parkBudget, when set, reads how many bytes one parkDead statement may
	// carry (MySQL: max_allowed_packet).
	parkInbox, parkDead, parkBudget        string
	settleLock, settleInsert, settleUpdate string
	// purge deletes one batch; on MySQL purgeSelect picks the batch and purge deletes it by primary key.
	purge, purgeSelect                 string
	purgeAttempts, purgeAttemptsSelect string

	deadGet, deadGetForUpdate, deadDelete string
	deadList, deadListKey                 string
	unpark                                string
	checkInbox, checkAttempts, checkDead  string
}

const inboxDeadCols = "id, consumer, msg_key, fingerprint, payload, headers, topic, message_id, attempts, last_error, " +
	"parked_at, payload_bytes, headers_bytes"

func (s *sqlStore) InboxClaim(ctx context.Context, tx DBTX, p *InboxClaimParams) (InboxClaimResult, error) {
	var at any
	if !p.ReceivedAt.IsZero() {
		at = s.timeArg(p.ReceivedAt)
	}
	if p.Keys != nil {
		if err := checkKeysLayout(p.Keys); err != nil {
			return InboxClaimResult{}, err
		}
		return s.inboxClaimKeys(ctx, tx, p, at)
	}
	inserted, err := s.insertNew(ctx, tx, s.ib.claim, p.Consumer, p.Key, p.Fingerprint, at)
	switch {
	case err != nil:
		return InboxClaimResult{}, wrap("record inbox key", err)
	case inserted && p.ClearAttempts:
		if _, err := tx.ExecContext(ctx, s.ib.clearAttempts, p.Consumer, p.Key); err != nil {
			return InboxClaimResult{}, wrap("clear inbox attempts", s.interpret(err))
		}
		fallthrough
	case inserted:
		return InboxClaimResult{Inserted: true}, nil
	}
	// The key is recorded, perhaps committed while the INSERT waited. The read sees it: on PostgreSQL as a new
	// statement under READ COMMITTED, on MySQL as a locking read (the duplicate-key error left a shared lock).
	var r InboxClaimResult
	err = tx.QueryRowContext(ctx, s.ib.claimRead, p.Consumer, p.Key).Scan(&r.Fingerprint, &r.Parked)
	if errors.Is(err, sql.ErrNoRows) {
		// Purged concurrently, or a REPEATABLE READ snapshot older than the conflicting commit.
		return r, retryableError("inbox key conflicted but is not visible (purged concurrently or snapshot too old)")
	}
	return r, wrap("read recorded inbox key", s.interpret(err))
}

// inboxSavepoint names the savepoint of ProcessBatch's deliveries; both databases take the same statements.
const inboxSavepoint = "txbox_delivery"

func (s *sqlStore) InboxSavepoint(ctx context.Context, tx DBTX) error {
	_, err := tx.ExecContext(ctx, "SAVEPOINT "+inboxSavepoint)
	return wrap("set savepoint", s.interpret(err))
}

func (s *sqlStore) InboxRollbackToSavepoint(ctx context.Context, tx DBTX) error {
	_, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+inboxSavepoint)
	return wrap("roll back to savepoint", s.interpret(err))
}

func (s *sqlStore) InboxRecordFailure(ctx context.Context, tx DBTX, p *InboxRecordFailureParams) (int, error) {
	var n int
	if s.ib.readAttempts == "" {
		err := tx.QueryRowContext(ctx, s.ib.recordFailure, p.Consumer, p.Key, p.LastError).Scan(&n)
		return n, wrap("count inbox attempt", s.interpret(err))
	}
	if _, err := tx.ExecContext(ctx, s.ib.recordFailure, p.Consumer, p.Key, p.LastError); err != nil {
		return 0, wrap("count inbox attempt", s.interpret(err))
	}
	// The row is ours (locked by the upsert) until commit; this read sees the count just written.
	err := tx.QueryRowContext(ctx, s.ib.readAttempts, p.Consumer, p.Key).Scan(&n)
	return n, wrap("read inbox attempts", s.interpret(err))
}

func (s *sqlStore) InboxPark(ctx context.Context, tx DBTX, p *InboxParkParams) (bool, error) {
	var inserted bool
	var err error
	if p.Keys != nil {
		if err := checkKeysLayout(p.Keys); err != nil {
			return false, err
		}
		inserted, err = s.inboxParkKeys(ctx, tx, p)
	} else {
		inserted, err = s.insertNew(ctx, tx, s.ib.parkInbox, p.Consumer, p.Key, p.Fingerprint)
	}
	if err != nil || !inserted {
		return false, wrap("record parked inbox key", err)
	}
	fit, err := s.parkFit(ctx, tx, p)
	if err != nil {
		return false, err
	}
	var headers any
	if len(fit.headers) > 0 {
		headers = s.jsonArg(fit.headers)
	}
	_, err = tx.ExecContext(ctx, s.ib.parkDead, p.Consumer, p.Key, p.Fingerprint, fit.payload, headers, p.Topic,
		p.MessageID, p.Attempts, p.LastError, fit.payloadBytes, fit.headersBytes)
	if err != nil {
		return false, wrap("insert inbox dead letter", s.interpret(err))
	}
	if _, err := tx.ExecContext(ctx, s.ib.clearAttempts, p.Consumer, p.Key); err != nil {
		return false, wrap("clear inbox attempts", s.interpret(err))
	}
	return true, nil
}

func (s *sqlStore) InboxDeadGet(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (InboxDeadRow, bool, error) {
	q := s.ib.deadGet
	if p.ForUpdate {
		q = s.ib.deadGetForUpdate
	}
	rows, err := tx.QueryContext(ctx, q, p.ID, p.Consumer)
	if err != nil {
		return InboxDeadRow{}, false, wrap("read inbox dead letter", s.interpret(err))
	}
	list, err := s.scanInboxDead(rows)
	if err != nil || len(list) == 0 {
		return InboxDeadRow{}, false, err
	}
	return list[0], true, nil
}

// InboxDeadDelete's count is the number of rows deleted, whatever MySQL's clientFoundRows says.
func (s *sqlStore) InboxDeadDelete(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (bool, error) {
	n, err := s.execCount(ctx, tx, "delete inbox dead letter", s.ib.deadDelete, p.ID, p.Consumer)
	return n > 0, err
}

func (s *sqlStore) InboxDeadList(ctx context.Context, db DBTX, p *InboxDeadListParams) ([]InboxDeadRow, error) {
	var rows *sql.Rows
	var err error
	if p.Key != "" {
		rows, err = db.QueryContext(ctx, s.ib.deadListKey, p.Consumer, p.Key, p.AfterID, p.Limit)
	} else {
		rows, err = db.QueryContext(ctx, s.ib.deadList, p.Consumer, p.AfterID, p.Limit)
	}
	if err != nil {
		return nil, wrap("list inbox dead letters", s.interpret(err))
	}
	return s.scanInboxDead(rows)
}

func (s *sqlStore) InboxSettle(ctx context.Context, tx DBTX, p *InboxKeyParams) (bool, error) {
	if p.Keys != nil {
		if err := checkKeysLayout(p.Keys); err != nil {
			return false, err
		}
		return s.inboxSettleKeys(ctx, tx, p)
	}
	var parked bool
	err := tx.QueryRowContext(ctx, s.ib.settleLock, p.Consumer, p.Key).Scan(&parked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Parked keys are never purged, so this is rare (a parked row removed by hand); record it afresh.
		inserted, err := s.insertNew(ctx, tx, s.ib.settleInsert, p.Consumer, p.Key, p.Fingerprint)
		if err == nil && !inserted {
			err = retryableError("inbox key recorded concurrently while settling a dead letter")
		}
		return inserted, wrap("record inbox key", err)
	case err != nil:
		return false, wrap("lock inbox key", s.interpret(err))
	case !parked:
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, s.ib.settleUpdate, p.Consumer, p.Key); err != nil {
		return false, wrap("unpark inbox key", s.interpret(err))
	}
	return true, nil
}

// InboxUnpark deletes by primary key, so it locks only the key's row.
func (s *sqlStore) InboxUnpark(ctx context.Context, tx DBTX, p *InboxKeyParams) (bool, error) {
	if p.Keys != nil {
		if err := checkKeysLayout(p.Keys); err != nil {
			return false, err
		}
		return s.inboxUnparkKeys(ctx, tx, p)
	}
	n, err := s.execCount(ctx, tx, "delete parked inbox key", s.ib.unpark, p.Consumer, p.Key)
	return n > 0, err
}

func (s *sqlStore) InboxPurge(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error) {
	return s.purgeBatch(ctx, tx, "purge inbox keys", s.ib.purgeSelect, s.ib.purge, p)
}

func (s *sqlStore) InboxPurgeAttempts(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error) {
	return s.purgeBatch(ctx, tx, "purge inbox attempts", s.ib.purgeAttemptsSelect, s.ib.purgeAttempts, p)
}

// purgeBatch deletes one batch: in one statement (args consumer, age, limit), or, when sel is set, by
// selecting the batch's keys and then deleting those keys by primary key (args keys as JSON, consumer, age).
// The delete re-checks the age, so a key recorded again meanwhile is kept.
func (s *sqlStore) purgeBatch(ctx context.Context, tx DBTX, what, sel, del string, p *InboxPurgeParams) (int, error) {
	age := p.OlderThan.Microseconds()
	if sel == "" {
		return s.execCount(ctx, tx, what, del, p.Consumer, age, p.Limit)
	}
	rows, err := tx.QueryContext(ctx, sel, p.Consumer, age, p.Limit)
	if err != nil {
		return 0, wrap(what, s.interpret(err))
	}
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, wrap(what, s.interpret(err))
		}
		keys = append(keys, k)
	}
	if err := errors.Join(rows.Close(), rows.Err()); err != nil {
		return 0, wrap(what, s.interpret(err))
	}
	if len(keys) == 0 {
		return 0, nil
	}
	// Keys are valid UTF-8 without NUL bytes (dialect.CheckKey), so JSON carries them byte for byte.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(keys); err != nil {
		return 0, fmt.Errorf("%s: encode keys: %w", what, err)
	}
	return s.execCount(ctx, tx, what, del, b.String(), p.Consumer, age)
}

func (s *sqlStore) InboxLegacyKeys(ctx context.Context, db DBTX) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT 1 FROM "+s.q.inbox+" LIMIT 1").Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, wrap("look for keys in "+s.q.inbox, s.interpret(err))
}

func (s *sqlStore) InboxCheckSchema(ctx context.Context, db DBTX) error {
	return s.checkQueries(ctx, db, "inbox", s.ib.checkInbox, s.ib.checkAttempts, s.ib.checkDead, s.ks.check,
		checkColumns("name, mode, period_s, retention_s, changed_at", s.q.partitions, "1 = 0"))
}

// parked is what InboxPark stores of a message: payload and headers, and the delivered sizes of what was cut
// (nil when stored whole).
type parked struct {
	payload, headers           []byte
	payloadBytes, headersBytes any
}

// mysqlMaxHeaders is what a MEDIUMBLOB holds.
const mysqlMaxHeaders = 1<<24 - 1

// parkOverhead is the room kept in a park statement for everything but payload and headers: the statement text,
// consumer, key, topic, message id and error text (each at most a few KiB, escaped).
const parkOverhead = 64 << 10

// parkFit decides what of p InboxPark stores. Without a budget (PostgreSQL) everything is kept. With one (MySQL),
// the statement must not exceed it however the driver sends its arguments: as text with interpolateParams,
// where escaping can double a byte, or as long data, where each argument must fit. Headers that do not fit
// are dropped, and the payload is cut to its longest prefix that fits.
func (s *sqlStore) parkFit(ctx context.Context, tx DBTX, p *InboxParkParams) (parked, error) {
	f := parked{payload: p.Payload, headers: p.Headers}
	if f.payload == nil {
		f.payload = []byte{} // NOT NULL column; an empty payload is still a payload
	}
	delivered := max(p.PayloadBytes, int64(len(p.Payload)))
	if p.PayloadBytes > 0 {
		f.payloadBytes = delivered
	}
	cutPayload := func(n int) {
		if n < len(f.payload) {
			f.payloadBytes, f.payload = delivered, f.payload[:n]
		}
	}
	dropHeaders := func() {
		if len(f.headers) > 0 {
			f.headersBytes, f.headers = int64(len(p.Headers)), nil
		}
	}
	if p.Minimal {
		cutPayload(0)
		dropHeaders()
		return f, nil
	}
	if s.ib.parkBudget == "" {
		return f, nil
	}
	var budget int
	if err := tx.QueryRowContext(ctx, s.ib.parkBudget).Scan(&budget); err != nil {
		return f, wrap("read the server's packet limit", s.interpret(err))
	}
	budget = min(budget, mysqlDriverPacket) - parkOverhead
	if h := escapedLen(f.headers); h > budget/2 || len(f.headers) > mysqlMaxHeaders {
		dropHeaders()
	}
	budget -= escapedLen(f.headers)
	cutPayload(escapedPrefix(f.payload, max(budget, 0)))
	return f, nil
}

// mysqlDriverPacket is go-sql-driver/mysql's default maxAllowedPacket: it refuses to send a longer packet even
// when the server would take it.
const mysqlDriverPacket = 64 << 20

// mysqlEscaped reports the bytes go-sql-driver/mysql writes with a backslash when it interpolates arguments.
func mysqlEscaped(c byte) bool {
	switch c {
	case 0, '\n', '\r', '\\', '\'', '"', 0x1a:
		return true
	}
	return false
}

// escapedLen is b's length once escaped for a statement's text.
func escapedLen(b []byte) int {
	n := len(b)
	for _, c := range b {
		if mysqlEscaped(c) {
			n++
		}
	}
	return n
}

// escapedPrefix returns the length of b's longest prefix whose escaped form takes at most n bytes.
func escapedPrefix(b []byte, n int) int {
	size := 0
	for i, c := range b {
		w := 1
		if mysqlEscaped(c) {
			w = 2
		}
		if size+w > n {
			return i
		}
		size += w
	}
	return len(b)
}

// scanInboxDead reads dead-letter rows in the column order of inboxDeadCols.
func (s *sqlStore) scanInboxDead(rows *sql.Rows) ([]InboxDeadRow, error) {
	defer rows.Close()
	var out []InboxDeadRow
	for rows.Next() {
		var r InboxDeadRow
		var headers, lastErr sql.NullString
		var payloadBytes, headersBytes sql.NullInt64
		at := s.times.newTime()
		if err := rows.Scan(&r.ID, &r.Consumer, &r.Key, &r.Fingerprint, &r.Payload, &headers, &r.Topic,
			&r.MessageID, &r.Attempts, &lastErr, at, &payloadBytes, &headersBytes); err != nil {
			return nil, wrap("scan inbox dead letter", s.interpret(err))
		}
		if headers.Valid && headers.String != "" {
			r.Headers = []byte(headers.String)
		}
		r.LastError, r.ParkedAt = lastErr.String, s.times.at(at)
		r.PayloadBytes, r.HeadersBytes = payloadBytes.Int64, headersBytes.Int64
		out = append(out, r)
	}
	return out, wrap("read inbox dead letters", s.interpret(rows.Err()))
}
