package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AdminStore is the SQL of the operator surfaces (txbox trace, the console and its JSON API): reads by business
// key and filtered listings. None of it is on a hot path, but all of it may run against a production database
// at any time, so every statement reaches rows through an index, except where a method says otherwise.
//
// The statements are rendered per call (they are cheap to build and rarely run), from the same quoted table
// names as the rest of the Store.
type AdminStore interface {
	// TraceKey reads every row that p.Match selects in the installation's six tables, at most p.Limit per table
	// (and per consumer for the inbox tables). Run it in a REPEATABLE READ transaction to read all the tables
	// from one snapshot: rows move between tables (outbox → published or dead) while it reads. The outbox table
	// has no index on the key (it would cost every enqueue), so its rows are found by a scan of the outbox,
	// which is small while relays keep up; the other tables are read through their key indexes, the inbox
	// tables one consumer at a time.
	TraceKey(ctx context.Context, db DBTX, p *TraceParams) (*TraceRows, error)

	// OutboxBacklog returns the outbox's pending rows per topic, sorted by topic: how many, how many are due, and
	// the age of the oldest. Like Stats, it scans the outbox.
	OutboxBacklog(ctx context.Context, db DBTX) ([]TopicBacklog, error)

	// OutboxDeadSearch lists the outbox's dead letters that p selects (p.Consumer must be empty), in id order,
	// at most p.Limit.
	OutboxDeadSearch(ctx context.Context, db DBTX, p *DeadSearchParams) ([]OutboxDeadRow, error)
	// InboxDeadSearch lists the inbox's dead letters that p selects, of every consumer unless p.Consumer is
	// set, in id order, at most p.Limit.
	InboxDeadSearch(ctx context.Context, db DBTX, p *DeadSearchParams) ([]InboxDeadRow, error)

	// InboxConsumers returns the consumers that have rows in any of the inbox tables, sorted, through one index
	// dive per consumer and table (a loose index scan on MySQL, a recursive skip scan on PostgreSQL).
	InboxConsumers(ctx context.Context, db DBTX) ([]string, error)
	// InboxKeys lists p.Consumer's recorded keys that p.Match selects (all when p.Match.Key is empty) after
	// p.AfterKey, in byte order of the key, at most p.Limit: a range of the primary key.
	InboxKeys(ctx context.Context, db DBTX, p *InboxKeysParams) ([]InboxKeyRow, error)
}

// KeyMatch selects business keys: Key itself and, with Children, every key that starts with Key + "/" — the
// keys inbox.Key builds from Key and further parts ("12345" → "12345/created", "12345/payment"). Keys are
// compared byte for byte.
type KeyMatch struct {
	Key      string
	Children bool
}

// bounds returns the arguments of keyCond: the key, and the half-open byte range of its children (empty when
// Children is false). '0' is the byte after '/', so [Key+"/", Key+"0") holds exactly the keys under Key.
func (m KeyMatch) bounds() (eq, lo, hi string) {
	if !m.Children {
		return m.Key, "", ""
	}
	return m.Key, m.Key + "/", m.Key + "0"
}

// keyCond is the SQL condition of a KeyMatch on msg_key; its arguments are bounds().
const keyCond = "(msg_key = ? OR (msg_key >= ? AND msg_key < ?))"

// TraceParams are the arguments of TraceKey.
type TraceParams struct {
	Match KeyMatch
	// Limit bounds the rows read from each table (and each consumer's share of an inbox table).
	Limit int
}

// TraceRows is what TraceKey found.
type TraceRows struct {
	// Now is the database's clock when the trace was read (UTC): "due in 3s" is relative to it.
	Now time.Time

	Pending   []TraceMessage // in the outbox: AvailableAt and LastError set
	Published []TraceMessage // in the published table (relay Retention): PublishedAt set
	Dead      []TraceMessage // in the outbox's dead-letter table: DeadAt and LastError set

	Keys     []InboxKeyRow        // recorded inbox keys
	Attempts []TraceInboxAttempts // failed deliveries counted for keys not yet processed or parked
	Parked   []TraceInboxDead     // inbox dead letters

	// Truncated is true when some table had more rows than Limit.
	Truncated bool
}

// TraceMessage is an outbox message in one of the outbox's tables, without its payload.
type TraceMessage struct {
	ID           int64
	Topic        string
	Key          string
	Tag          string
	ShardingKey  string
	PayloadBytes int
	Headers      []byte // JSON object of strings, or nil
	// Attempts counts failed publishes (before the one that succeeded, for a published row).
	Attempts  int
	CreatedAt time.Time
	// AvailableAt is when a pending row is due (its next attempt).
	AvailableAt time.Time
	PublishedAt time.Time
	DeadAt      time.Time
	LastError   string
}

// InboxKeyRow is one recorded inbox key.
type InboxKeyRow struct {
	Consumer   string
	Key        string
	ReceivedAt time.Time // when it was processed (or settled from the dead-letter table)
	Parked     bool      // the message sits in the dead-letter table
}

// TraceInboxAttempts counts a key's failed deliveries.
type TraceInboxAttempts struct {
	Consumer  string
	Key       string
	Attempts  int
	LastError string
	UpdatedAt time.Time // the last failure
}

// TraceInboxDead is an inbox dead letter without its payload.
type TraceInboxDead struct {
	ID           int64
	Consumer     string
	Key          string
	Topic        string
	MessageID    string
	PayloadBytes int
	Headers      []byte
	Attempts     int
	LastError    string
	ParkedAt     time.Time
}

// TopicBacklog is one topic's pending outbox rows.
type TopicBacklog struct {
	Topic   string
	Pending int64
	Due     int64
	// OldestAge is how long the oldest pending row has waited since it was enqueued, by the database's clock.
	OldestAge time.Duration
}

// DeadSearchParams select dead letters. Every set field narrows the selection.
type DeadSearchParams struct {
	Consumer string   // inbox only: this consumer's dead letters
	Topic    string   // this topic
	Match    KeyMatch // these keys (Match.Key empty: any key)
	IDs      []int64  // these ids (at most 1000)
	AfterID  int64    // ids above this one: the last id of the previous page
	Limit    int      // page size, 1 to 1000
}

// InboxKeysParams are the arguments of InboxKeys.
type InboxKeysParams struct {
	Consumer string // required
	Match    KeyMatch
	AfterKey string // keys above this one, in byte order: the last key of the previous page
	Limit    int    // page size, 1 to 1000
}

// maxAdminPage bounds pages and id lists of the admin methods.
const maxAdminPage = 1000

// adminSQL holds the dialect-specific fragments the admin statements are built from.
type adminSQL struct {
	now   string              // the database's clock, UTC
	age   func(string) string // microseconds from the instant in a column to now
	due   string              // aggregate counting pending rows that are due
	skip  func(string) string // a statement listing the distinct consumers of a table, one dive per consumer
	bind  func(string) string // rewrites '?' placeholders for the dialect
	bytes string              // byte length of a BLOB/BYTEA column (function name)
}

func (s *sqlStore) admin() adminSQL {
	if s.d.Name() == "mysql" {
		return adminSQL{
			now: "UTC_TIMESTAMP(6)",
			age: func(col string) string { return "TIMESTAMPDIFF(MICROSECOND, " + col + ", UTC_TIMESTAMP(6))" },
			due: "COALESCE(SUM(available_at <= UTC_TIMESTAMP(6)), 0)",
			// A loose index scan on the leading column of the primary (or unique) key: one dive per consumer.
			skip:  func(table string) string { return "SELECT DISTINCT consumer FROM " + table },
			bind:  func(q string) string { return q },
			bytes: "OCTET_LENGTH",
		}
	}
	return adminSQL{
		now: "clock_timestamp()",
		age: func(col string) string {
			return "(EXTRACT(EPOCH FROM clock_timestamp() - " + col + ") * 1000000)::bigint"
		},
		due: "COUNT(*) FILTER (WHERE available_at <= clock_timestamp())",
		// PostgreSQL has no loose index scan; a recursive CTE emulates one on the (consumer, msg_key) index.
		skip: func(table string) string {
			return "(WITH RECURSIVE skip(name) AS ((SELECT consumer FROM " + table + " ORDER BY consumer LIMIT 1)" +
				" UNION ALL SELECT (SELECT consumer FROM " + table + " WHERE consumer > skip.name ORDER BY consumer LIMIT 1)" +
				" FROM skip WHERE skip.name IS NOT NULL) SELECT name AS consumer FROM skip WHERE name IS NOT NULL)"
		},
		bind:  s.d.Rebind,
		bytes: "octet_length",
	}
}

func (s *sqlStore) InboxConsumers(ctx context.Context, db DBTX) ([]string, error) {
	a := s.admin()
	q := a.skip(s.q.inbox) + " UNION " + a.skip(s.q.inboxKeys) + " UNION " + a.skip(s.q.inboxAttempts) + " UNION " +
		a.skip(s.q.inboxDead)
	rows, err := db.QueryContext(ctx, "SELECT consumer FROM ("+q+") AS c ORDER BY consumer")
	if err != nil {
		return nil, wrap("list inbox consumers", s.interpret(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, wrap("list inbox consumers", s.interpret(err))
		}
		out = append(out, c)
	}
	return out, wrap("list inbox consumers", s.interpret(rows.Err()))
}

func (s *sqlStore) OutboxBacklog(ctx context.Context, db DBTX) ([]TopicBacklog, error) {
	a := s.admin()
	q := "SELECT topic, COUNT(*), " + a.due + ", COALESCE(" + a.age("MIN(created_at)") + ", 0) FROM " + s.q.outbox +
		" GROUP BY topic ORDER BY topic"
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, wrap("read outbox backlog", s.interpret(err))
	}
	defer rows.Close()
	var out []TopicBacklog
	for rows.Next() {
		var b TopicBacklog
		var micros int64
		if err := rows.Scan(&b.Topic, &b.Pending, &b.Due, &micros); err != nil {
			return nil, wrap("read outbox backlog", s.interpret(err))
		}
		b.OldestAge = time.Duration(micros) * time.Microsecond
		out = append(out, b)
	}
	return out, wrap("read outbox backlog", s.interpret(rows.Err()))
}

func checkPage(limit int, ids []int64) error {
	if limit < 1 || limit > maxAdminPage {
		return fmt.Errorf("page size must be between 1 and %d, got %d", maxAdminPage, limit)
	}
	if len(ids) > maxAdminPage {
		return fmt.Errorf("at most %d ids at once, got %d", maxAdminPage, len(ids))
	}
	return nil
}

// deadWhere renders the conditions of p (without consumer when inbox is false) and their arguments.
func deadWhere(p *DeadSearchParams, inbox bool) (string, []any) {
	conds := []string{"id > ?"}
	args := []any{p.AfterID}
	if inbox && p.Consumer != "" {
		conds = append(conds, "consumer = ?")
		args = append(args, p.Consumer)
	}
	if p.Topic != "" {
		conds = append(conds, "topic = ?")
		args = append(args, p.Topic)
	}
	if p.Match.Key != "" {
		eq, lo, hi := p.Match.bounds()
		conds = append(conds, keyCond)
		args = append(args, eq, lo, hi)
	}
	if len(p.IDs) > 0 {
		conds = append(conds, "id IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(p.IDs)), ", ")+")")
		for _, id := range p.IDs {
			args = append(args, id)
		}
	}
	return " WHERE " + strings.Join(conds, " AND ") + " ORDER BY id LIMIT ?", append(args, p.Limit)
}

func (s *sqlStore) OutboxDeadSearch(ctx context.Context, db DBTX, p *DeadSearchParams) ([]OutboxDeadRow, error) {
	if err := checkPage(p.Limit, p.IDs); err != nil {
		return nil, wrap("search outbox dead letters", err)
	}
	if p.Consumer != "" {
		return nil, wrap("search outbox dead letters", fmt.Errorf("outbox dead letters have no consumer"))
	}
	where, args := deadWhere(p, false)
	rows, err := db.QueryContext(ctx, s.admin().bind("SELECT "+outboxDeadCols+" FROM "+s.q.outboxDead+where), args...)
	if err != nil {
		return nil, wrap("search outbox dead letters", s.interpret(err))
	}
	out, err := scanOutboxDeadRows(rows, s.times)
	return out, wrap("search outbox dead letters", s.interpret(err))
}

func (s *sqlStore) InboxDeadSearch(ctx context.Context, db DBTX, p *DeadSearchParams) ([]InboxDeadRow, error) {
	if err := checkPage(p.Limit, p.IDs); err != nil {
		return nil, wrap("search inbox dead letters", err)
	}
	where, args := deadWhere(p, true)
	rows, err := db.QueryContext(ctx, s.admin().bind("SELECT "+inboxDeadCols+" FROM "+s.q.inboxDead+where), args...)
	if err != nil {
		return nil, wrap("search inbox dead letters", s.interpret(err))
	}
	return s.scanInboxDead(rows)
}

func (s *sqlStore) InboxKeys(ctx context.Context, db DBTX, p *InboxKeysParams) ([]InboxKeyRow, error) {
	if err := checkPage(p.Limit, nil); err != nil {
		return nil, wrap("list inbox keys", err)
	}
	if p.Consumer == "" {
		return nil, wrap("list inbox keys", fmt.Errorf("no consumer"))
	}
	cond, args := "consumer = ? AND msg_key > ?", []any{p.Consumer, p.AfterKey}
	if p.Match.Key != "" {
		eq, lo, hi := p.Match.bounds()
		cond += " AND " + keyCond
		args = append(args, eq, lo, hi)
	}
	q, args := s.keysUnion(cond, args, p.Limit)
	rows, err := db.QueryContext(ctx, s.admin().bind(q), args...)
	if err != nil {
		return nil, wrap("list inbox keys", s.interpret(err))
	}
	out, err := scanAll(rows, s.scanInboxKey)
	return out, wrap("list inbox keys", s.interpret(err))
}

// keysUnion renders the recorded keys matching cond (written with '?' placeholders for args), each once, in key
// order, at most limit, from both layouts' tables: the keys of <prefix>_inbox and, of <prefix>_inbox_keys, the
// newest row of each key not also in <prefix>_inbox (while the inbox converts, keys are recorded in both). Each
// side is cut at limit in its index order, so that a page reads a page, not every key of the consumer.
func (s *sqlStore) keysUnion(cond string, args []any, limit int) (string, []any) {
	cols := "consumer, msg_key, received_at, parked"
	q := "SELECT " + cols + " FROM ((SELECT " + cols + " FROM " + s.q.inbox + " WHERE " + cond + " ORDER BY msg_key LIMIT ?)" +
		" UNION ALL (SELECT " + prefixCols("k.", cols) + " FROM " + s.q.inboxKeys + " AS k WHERE " + cond +
		" AND NOT EXISTS (SELECT 1 FROM " + s.q.inboxKeys + " AS n WHERE n.consumer = k.consumer AND n.msg_key = k.msg_key" +
		" AND n.bucket > k.bucket) AND NOT EXISTS (SELECT 1 FROM " + s.q.inbox + " AS l WHERE l.consumer = k.consumer" +
		" AND l.msg_key = k.msg_key) ORDER BY k.msg_key LIMIT ?)) AS ik ORDER BY msg_key LIMIT ?"
	all := append(append(append(append(slices.Clone(args), limit), args...), limit), limit)
	return q, all
}

func (s *sqlStore) scanInboxKey(rows *sql.Rows) (InboxKeyRow, error) {
	var r InboxKeyRow
	at := s.times.newTime()
	err := rows.Scan(&r.Consumer, &r.Key, at, &r.Parked)
	r.ReceivedAt = s.times.at(at)
	return r, err
}

// scanAll reads every row with scan and closes rows.
func scanAll[T any](rows *sql.Rows, scan func(*sql.Rows) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
