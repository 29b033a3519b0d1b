package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/txbox/txbox/dialect"
)

// PartitionedTable names one of the tables that can be partitioned by time.
type PartitionedTable string

const (
	// InboxKeysTable is <prefix>_inbox_keys: partitioned by bucket, an integer the claim computes from the
	// database's clock.
	InboxKeysTable PartitionedTable = "inbox_keys"
	// PublishedTable is <prefix>_outbox_published: partitioned by published_at, which the relay's statements
	// set from the database's clock.
	PublishedTable PartitionedTable = "outbox_published"
)

// LayoutMode is which table an installation keeps a table's rows in (the partitions table's mode column).
type LayoutMode int

const (
	// Unpartitioned: the inbox records keys in <prefix>_inbox; the published table is a plain table.
	Unpartitioned LayoutMode = 0
	// Converting (inbox only): claims record each key in both tables, so that processes still running on the
	// unpartitioned table and processes already on the partitioned one see each other's keys.
	Converting LayoutMode = 1
	// Partitioned: keys (rows) go to the partitioned table only; the inbox still looks keys up in
	// <prefix>_inbox, read-only, until the ones recorded there before the conversion have expired.
	Partitioned LayoutMode = 2
)

func (m LayoutMode) String() string {
	switch m {
	case Unpartitioned:
		return "unpartitioned"
	case Converting:
		return "converting"
	case Partitioned:
		return "partitioned"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// PartitionState is a table's row in the partitions table, read with the database's clock.
type PartitionState struct {
	Mode LayoutMode
	// Period is the partition period P, zero until set; Retention the table's retention, zero until declared.
	Period, Retention time.Duration
	// ChangedAt is when Mode last changed (database clock); Now is the database's clock at the read.
	ChangedAt, Now time.Time
}

// Bucket is the bucket of instant t: floor(seconds since the epoch / Period).
func (s PartitionState) Bucket(t time.Time) int64 { return BucketOf(t, s.Period) }

// BucketOf is floor(seconds since the epoch of t / period).
func BucketOf(t time.Time, period time.Duration) int64 {
	us, p := t.UnixMicro(), period.Microseconds()
	b := us / p
	if us%p != 0 && us < 0 {
		b--
	}
	return b
}

// BucketStart is the first instant of bucket b.
func BucketStart(b int64, period time.Duration) time.Time {
	return time.UnixMicro(b * period.Microseconds()).UTC()
}

// Partition is one partition of a partitioned table: the rows of buckets [Lo, Hi). The first partition of a
// MySQL table also takes every lower bucket (Lo is math.MinInt64); the catch-all (PostgreSQL DEFAULT, MySQL
// MAXVALUE) has CatchAll set and takes every bucket no other partition takes.
type Partition struct {
	Name     string
	Lo, Hi   int64
	CatchAll bool
}

func (p Partition) String() string {
	if p.CatchAll {
		return p.Name + " (catch-all)"
	}
	lo := strconv.FormatInt(p.Lo, 10)
	if p.Lo == math.MinInt64 {
		lo = "-inf"
	}
	return fmt.Sprintf("%s [%s, %d)", p.Name, lo, p.Hi)
}

// KeysLayout tells the inbox statements how the installation records keys (nil: the unpartitioned layout).
type KeysLayout struct {
	Mode LayoutMode // Converting or Partitioned
	// Period is the partition period; Retention the table's retention (the existence check looks at buckets
	// from the one Retention ago); Window the claim window W: a claim also records the key in every later
	// bucket that begins within Window of it.
	Period, Retention, Window time.Duration
	// Legacy makes claims look keys up in <prefix>_inbox too (keys recorded before the conversion).
	Legacy bool
}

// PartitionStore is the SQL of the time-partitioned tables: the layout row and the partitions' DDL.
type PartitionStore interface {
	// PartitionState reads table's row of the partitions table and the database's clock. The error wraps
	// dialect.ErrSchemaMissing when the table (migration 00007) is missing.
	PartitionState(ctx context.Context, db DBTX, table PartitionedTable) (PartitionState, error)
	// PartitionDeclare sets the period of table when it has none and raises its retention to at least
	// retention, then returns the state. The period, once set, never changes.
	PartitionDeclare(ctx context.Context, db DBTX, table PartitionedTable, period, retention time.Duration) (PartitionState, error)
	// PartitionSetRetention sets table's retention (operators lower it this way) and reports whether the row
	// exists.
	PartitionSetRetention(ctx context.Context, db DBTX, table PartitionedTable, retention time.Duration) (bool, error)
	// PartitionSetMode changes table's mode from from to to and reports whether it did (false: the mode was
	// not from).
	PartitionSetMode(ctx context.Context, db DBTX, table PartitionedTable, from, to LayoutMode) (bool, error)

	// PartitionList lists table's partitions in bucket order, the catch-all last, as the catalog shows them.
	PartitionList(ctx context.Context, db DBTX, table PartitionedTable, period time.Duration) ([]Partition, error)
	// PartitionCatchAllRows counts the rows in table's catch-all partition and returns the lowest and highest
	// bucket among them (0, 0 when empty).
	PartitionCatchAllRows(ctx context.Context, db DBTX, table PartitionedTable, period time.Duration) (n, lo, hi int64, err error)
	// PartitionCreate creates on conn (DDL, outside any transaction) a partition for each pair of consecutive
	// cuts: buckets [cuts[0], cuts[1]), [cuts[1], cuts[2]) and so on. Rows the catch-all holds for those
	// buckets move into them. On MySQL, whose ranges only grow at their end, the first one also takes every
	// bucket between the last partition and cuts[0].
	PartitionCreate(ctx context.Context, conn *sql.Conn, table PartitionedTable, period time.Duration, cuts []int64) error
	// PartitionDrop drops partition p of table on conn (DDL).
	PartitionDrop(ctx context.Context, conn *sql.Conn, table PartitionedTable, p Partition) error
	// PartitionCarryParked copies the parked keys of partition p of the inbox keys into bucket to (as parked,
	// with their fingerprint and time), locking them first so that a concurrent unpark or settle either comes
	// before (the key is not copied) or after (it sees the copy). It returns how many it copied. Run it in a
	// transaction of its own before dropping p.
	PartitionCarryParked(ctx context.Context, tx DBTX, p Partition, to int64) (int, error)
	// PartitionPrepareDDL readies conn for partition DDL: waits for locks at most lockWait, so that DDL that
	// cannot get its lock gives up instead of making every statement queue behind it.
	PartitionPrepareDDL(ctx context.Context, conn *sql.Conn, lockWait time.Duration) error
}

// ErrNoPeriod is returned for a partitioned table whose period was never set.
var ErrNoPeriod = errors.New("partition period not set")

// scanPartitionState reads mode, period_s, retention_s, changed_at and the clock.
func (s *sqlStore) scanPartitionState(row *sql.Row) (PartitionState, error) {
	var st PartitionState
	var period, retention sql.NullInt64
	changed, now := s.times.newTime(), s.times.newTime()
	if err := row.Scan(&st.Mode, &period, &retention, changed, now); err != nil {
		return st, err
	}
	st.Period = time.Duration(period.Int64) * time.Second
	st.Retention = time.Duration(retention.Int64) * time.Second
	st.ChangedAt, st.Now = s.times.at(changed), s.times.at(now)
	return st, nil
}

// partitionSQL holds a dialect's statements on the partitions table.
type partitionSQL struct {
	state, declare, setRetention, setMode string
}

// newPartitionSQL renders the statements on the partitions table with the dialect's clock (the instant of
// the statement) and placeholders.
func newPartitionSQL(d dialect.Dialect, table, now string) partitionSQL {
	return partitionSQL{
		state: d.Rebind("SELECT mode, period_s, retention_s, changed_at, " + now + " FROM " + table + " WHERE name = ?"),
		declare: d.Rebind("UPDATE " + table + " SET period_s = COALESCE(period_s, ?)," +
			" retention_s = GREATEST(COALESCE(retention_s, 0), ?) WHERE name = ?"),
		setRetention: d.Rebind("UPDATE " + table + " SET retention_s = ? WHERE name = ?"),
		setMode:      d.Rebind("UPDATE " + table + " SET mode = ?, changed_at = " + now + " WHERE name = ? AND mode = ?"),
	}
}

func (s *sqlStore) PartitionState(ctx context.Context, db DBTX, table PartitionedTable) (PartitionState, error) {
	st, err := s.scanPartitionState(db.QueryRowContext(ctx, s.pt.state, string(table)))
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("read layout of %s: no row in %s (migration 00007 incomplete?)", table, s.t.Partitions)
	}
	return st, wrap("read layout of "+string(table), s.interpret(err))
}

func (s *sqlStore) PartitionDeclare(ctx context.Context, db DBTX, table PartitionedTable, period, retention time.Duration) (PartitionState, error) {
	if period < time.Second || retention < time.Second {
		return PartitionState{}, fmt.Errorf("declare %s: period (%s) and retention (%s) must be at least 1s", table, period, retention)
	}
	if _, err := db.ExecContext(ctx, s.pt.declare, int64(period/time.Second), int64(retention/time.Second), string(table)); err != nil {
		return PartitionState{}, wrap("declare period and retention of "+string(table), s.interpret(err))
	}
	return s.PartitionState(ctx, db, table)
}

func (s *sqlStore) PartitionSetRetention(ctx context.Context, db DBTX, table PartitionedTable, retention time.Duration) (bool, error) {
	if retention < time.Second {
		return false, fmt.Errorf("set retention of %s: %s is under 1s", table, retention)
	}
	n, err := s.execCount(ctx, db, "set retention of "+string(table), s.pt.setRetention, int64(retention/time.Second), string(table))
	return n > 0, err
}

func (s *sqlStore) PartitionSetMode(ctx context.Context, db DBTX, table PartitionedTable, from, to LayoutMode) (bool, error) {
	n, err := s.execCount(ctx, db, "set layout of "+string(table), s.pt.setMode, int(to), string(table), int(from))
	return n > 0, err
}

// sortPartitions orders partitions by their first bucket, the catch-all last.
func sortPartitions(ps []Partition) {
	slices.SortFunc(ps, func(a, b Partition) int {
		switch {
		case a.CatchAll != b.CatchAll:
			if a.CatchAll {
				return 1
			}
			return -1
		case a.Lo < b.Lo:
			return -1
		case a.Lo > b.Lo:
			return 1
		}
		return 0
	})
}

// partitionName is the name of the partition that starts at bucket lo (PostgreSQL: a table in the schema of
// table; MySQL: a partition name). Bounds are read from the catalog, never from names.
func partitionName(table string, lo int64) string { return table + "_b" + strconv.FormatInt(lo, 10) }

// ConvertStore is the SQL of converting an existing installation to the partitioned layout.
type ConvertStore interface {
	// InboxLegacyOnly returns up to limit keys ("consumer/key") recorded in <prefix>_inbox at or after since
	// that have no row in <prefix>_inbox_keys: while the inbox converts, every claim records a key in both, so
	// such a key was recorded by a process that does not know the partitioned layout. It scans the keys
	// recorded since since.
	InboxLegacyOnly(ctx context.Context, db DBTX, since time.Time, limit int) ([]string, error)

	// PublishedSwap replaces the plain published table by a partitioned one under the same name, in one step
	// for the relays that write it (PostgreSQL: one transaction; MySQL: one RENAME TABLE), and sets the
	// table's mode to Partitioned. The plain table stays as <prefix>_outbox_published_old.
	PublishedSwap(ctx context.Context, conn *sql.Conn) error
	// PublishedCopyOld copies up to limit rows with id > afterID from <prefix>_outbox_published_old into the
	// partitioned table, in id order, leaving out rows published before since (expired), and returns the
	// last id it read and how many it read (0 when done). A row copied before is skipped.
	PublishedCopyOld(ctx context.Context, db DBTX, afterID int64, since time.Time, limit int) (int64, int, error)
	// PublishedDropOld drops <prefix>_outbox_published_old; PublishedOldExists tells whether it exists.
	PublishedDropOld(ctx context.Context, conn *sql.Conn) error
	PublishedOldExists(ctx context.Context, db DBTX) (bool, error)
}

func (s *sqlStore) InboxLegacyOnly(ctx context.Context, db DBTX, since time.Time, limit int) ([]string, error) {
	q := s.d.Rebind("SELECT l.consumer, l.msg_key FROM " + s.q.inbox + " AS l WHERE l.received_at >= ? AND NOT EXISTS" +
		" (SELECT 1 FROM " + s.q.inboxKeys + " AS k WHERE k.consumer = l.consumer AND k.msg_key = l.msg_key) LIMIT ?")
	rows, err := db.QueryContext(ctx, q, s.timeArg(since), limit)
	if err != nil {
		return nil, wrap("look for keys recorded in "+s.q.inbox+" only", s.interpret(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c, k string
		if err := rows.Scan(&c, &k); err != nil {
			return nil, wrap("look for keys recorded in "+s.q.inbox+" only", s.interpret(err))
		}
		out = append(out, c+"/"+k)
	}
	return out, wrap("look for keys recorded in "+s.q.inbox+" only", s.interpret(rows.Err()))
}

// publishedCols are the published table's columns, in both layouts.
const publishedCols = "id, part, topic, msg_key, tag, sharding_key, payload, headers, attempts, created_at, published_at"

func (s *sqlStore) oldPublished() (string, error) {
	return s.d.QuoteIdent(s.t.OutboxPublished + "_old")
}

func (s *sqlStore) PublishedCopyOld(ctx context.Context, db DBTX, afterID int64, since time.Time, limit int) (int64, int, error) {
	old, err := s.oldPublished()
	if err != nil {
		return 0, 0, err
	}
	var last sql.NullInt64
	var n int
	err = db.QueryRowContext(ctx, s.d.Rebind("SELECT MAX(id), COUNT(*) FROM (SELECT id FROM "+old+" WHERE id > ? ORDER BY id LIMIT ?) AS b"),
		afterID, limit).Scan(&last, &n)
	if err != nil || n == 0 {
		return afterID, 0, wrap("read "+old, s.interpret(err))
	}
	skip := " ON CONFLICT DO NOTHING"
	if s.d.Name() == "mysql" {
		skip = " ON DUPLICATE KEY UPDATE id = " + s.q.outboxPublished + ".id"
	}
	_, err = db.ExecContext(ctx, s.d.Rebind("INSERT INTO "+s.q.outboxPublished+" ("+publishedCols+") SELECT "+publishedCols+
		" FROM "+old+" WHERE id > ? AND id <= ? AND published_at >= ?"+skip), afterID, last.Int64, s.timeArg(since))
	return last.Int64, n, wrap("copy rows of "+old, s.interpret(err))
}

func (s *sqlStore) PublishedDropOld(ctx context.Context, conn *sql.Conn) error {
	old, err := s.oldPublished()
	if err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, "DROP TABLE "+old)
	return wrap("drop "+old, s.interpret(err))
}

func (s *sqlStore) PublishedOldExists(ctx context.Context, db DBTX) (bool, error) {
	old, err := s.oldPublished()
	if err != nil {
		return false, err
	}
	rows, err := db.QueryContext(ctx, "SELECT id FROM "+old+" WHERE 1 = 0")
	if err == nil {
		return true, rows.Close()
	}
	if err = s.interpret(err); errors.Is(err, dialect.ErrSchemaMissing) {
		return false, nil
	}
	return false, wrap("look for "+old, err)
}
