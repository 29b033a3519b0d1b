package partition

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// Defaults of Config.
const (
	DefaultAhead    = 2
	DefaultLockWait = 2 * time.Second
	// MinPeriod is the shortest period PeriodFor derives; Config.Period may set shorter ones (tests).
	MinPeriod = time.Hour
	// PeriodsPerRetention is how many periods PeriodFor fits in a retention: the live partitions a key is
	// looked up in number about PeriodsPerRetention + 1.
	PeriodsPerRetention = 7
)

// maxBack bounds how many periods before the current one get partitions made: the live ones of a table with
// the derived period (about PeriodsPerRetention), not millions for a period of seconds.
const maxBack = 2 * PeriodsPerRetention

// PeriodFor derives the partition period from the retention an installation is created with: a seventh of
// it, in whole hours (whole days from a day up), at least MinPeriod. Seven days give one partition a day.
func PeriodFor(retention time.Duration) time.Duration {
	p := retention / PeriodsPerRetention
	if p >= 24*time.Hour {
		return p.Truncate(24 * time.Hour)
	}
	return max(p.Truncate(time.Hour), MinPeriod)
}

// Config configures a Manager.
type Config struct {
	Table store.PartitionedTable
	// Retention is this process's retention. The table keeps rows for the longest retention any process
	// declared (a shorter one is a lower bound); it is declared when the manager first runs. Required.
	Retention time.Duration
	// Period is the partition period to set when the table has none yet. Default PeriodFor(Retention); at
	// least 1s.
	Period time.Duration
	// Ahead is how many periods after the current one get their partition ahead of time. Default DefaultAhead.
	Ahead int
	// LockWait bounds how long a partition's DDL waits for the table's locks before giving up until the next
	// run (statements queue behind DDL that waits). Default DefaultLockWait.
	LockWait time.Duration
	// Logger receives what the manager did (Info), missing partitions and catch-all rows (Warn). Default: discard.
	Logger *slog.Logger
	// Now is the application's clock (default time.Now). The manager only compares it with the database's to
	// log a skew: the database's clock decides every bucket and every drop, so a skewed application clock
	// changes nothing (a test runs the manager with a clock a month off).
	Now func() time.Time
}

// Manager keeps one partitioned table of one installation.
type Manager struct {
	db  *sql.DB
	s   store.Store
	cfg Config
}

// New returns a Manager of cfg.Table in the installation s on db.
func New(db *sql.DB, s store.Store, cfg Config) (*Manager, error) {
	if cfg.Table != store.InboxKeysTable && cfg.Table != store.PublishedTable {
		return nil, fmt.Errorf("partition: unknown table %q", cfg.Table)
	}
	if cfg.Retention < time.Second {
		return nil, fmt.Errorf("partition: Retention must be at least 1s, got %s", cfg.Retention)
	}
	if cfg.Period == 0 {
		cfg.Period = PeriodFor(cfg.Retention)
	}
	if cfg.Period < time.Second || cfg.Period%time.Second != 0 {
		return nil, fmt.Errorf("partition: Period must be a whole number of seconds, at least 1s, got %s", cfg.Period)
	}
	if cfg.Ahead == 0 {
		cfg.Ahead = DefaultAhead
	}
	if cfg.Ahead < 1 || cfg.Ahead > 100 {
		return nil, fmt.Errorf("partition: Ahead must be between 1 and 100, got %d", cfg.Ahead)
	}
	if cfg.LockWait == 0 {
		cfg.LockWait = DefaultLockWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if db == nil || s == nil {
		return nil, errors.New("partition: nil database or store")
	}
	return &Manager{db: db, s: s, cfg: cfg}, nil
}

// Report is what one Maintain run found and did.
type Report struct {
	State store.PartitionState
	// Created and Dropped are the partitions made and dropped; Carried counts the parked keys copied forward.
	Created, Dropped []store.Partition
	Carried          int
	// CatchAll counts the rows in the catch-all partition after the run (0 when every row has its partition).
	CatchAll int64
	// Partitions lists the table's partitions after the run.
	Partitions []store.Partition
}

// Declare records this process's retention (and the period, if the table has none) and returns the state.
func (m *Manager) Declare(ctx context.Context) (store.PartitionState, error) {
	st, err := m.s.PartitionState(ctx, m.db, m.cfg.Table)
	if err != nil {
		return st, fmt.Errorf("partition: %w", err)
	}
	if st.Period > 0 && st.Retention >= m.cfg.Retention {
		return st, nil
	}
	st, err = m.s.PartitionDeclare(ctx, m.db, m.cfg.Table, m.cfg.Period, m.cfg.Retention)
	if err != nil {
		return st, fmt.Errorf("partition: %w", err)
	}
	return st, nil
}

// Maintain makes the partitions from the oldest bucket a live key can be in (at most 2×PeriodsPerRetention
// periods back) to Ahead periods after the current one, moving rows out of the catch-all into them, then drops
// the partitions whose rows are all older than the table's retention, carrying parked inbox keys into the
// current bucket first. It does nothing while
// the table is unpartitioned. Every step uses the database's clock. A step that fails (a lock not granted
// within LockWait, a claim that put a row of the bucket into the catch-all meanwhile) is reported in the error;
// the steps before it stand and the next run goes on from there.
func (m *Manager) Maintain(ctx context.Context) (Report, error) {
	var r Report
	st, err := m.Declare(ctx)
	r.State = st
	if err != nil || st.Mode == store.Unpartitioned {
		return r, err
	}
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return r, fmt.Errorf("partition: %w", m.s.Dialect().InterpretError(err))
	}
	// The session's lock timeouts stay with the connection: it is never handed back to the pool.
	defer store.DiscardConn(conn)
	if err := m.s.PartitionPrepareDDL(ctx, conn, m.cfg.LockWait); err != nil {
		return r, fmt.Errorf("partition: %w", err)
	}
	parts, err := m.s.PartitionList(ctx, conn, m.cfg.Table, st.Period)
	if err != nil {
		return r, fmt.Errorf("partition: %w", err)
	}
	if skew := m.cfg.Now().Sub(st.Now); skew > time.Minute || skew < -time.Minute {
		m.cfg.Logger.InfoContext(ctx, "txbox partitions: this process's clock differs from the database's; harmless, "+
			"buckets and drops follow the database's clock", "table", m.cfg.Table, "skew", skew.Round(time.Second))
	}
	cur := st.Bucket(st.Now)
	var errs []error
	created, err := m.create(ctx, conn, st, parts, cur)
	r.Created = created
	errs = append(errs, err)
	if parts, err = m.s.PartitionList(ctx, conn, m.cfg.Table, st.Period); err != nil {
		return r, fmt.Errorf("partition: %w", err)
	}
	dropped, carried, err := m.drop(ctx, conn, st, parts, cur)
	r.Dropped, r.Carried = dropped, carried
	errs = append(errs, err)
	if r.Partitions, err = m.s.PartitionList(ctx, conn, m.cfg.Table, st.Period); err != nil {
		return r, fmt.Errorf("partition: %w", err)
	}
	n, lo, hi, err := m.s.PartitionCatchAllRows(ctx, conn, m.cfg.Table, st.Period)
	errs = append(errs, err)
	r.CatchAll = n
	if n > 0 {
		m.cfg.Logger.WarnContext(ctx, "txbox partitions: rows in the catch-all partition: partitions were missing when they "+
			"were written (was the purger down?); they move into their partitions once no new row of their buckets arrives",
			"table", m.cfg.Table, "rows", n, "first_bucket_start", store.BucketStart(lo, st.Period),
			"last_bucket_start", store.BucketStart(hi, st.Period))
	}
	return r, errors.Join(errs...)
}

// covered reports whether a partition other than the catch-all takes bucket b.
func covered(parts []store.Partition, b int64) bool {
	for _, p := range parts {
		if !p.CatchAll && p.Lo <= b && b < p.Hi {
			return true
		}
	}
	return false
}

// create makes the partitions of the buckets from the oldest live one (at most maxBack periods back) to Ahead
// periods after the current one, one per bucket, and gives the rows the catch-all holds for older buckets a
// partition of their own, which the drop that follows removes whole.
func (m *Manager) create(ctx context.Context, conn *sql.Conn, st store.PartitionState, parts []store.Partition, cur int64) ([]store.Partition, error) {
	first := max(st.Bucket(st.Now.Add(-st.Retention)), cur-maxBack)
	last := cur + int64(m.cfg.Ahead)
	n, lo, _, err := m.s.PartitionCatchAllRows(ctx, conn, m.cfg.Table, st.Period)
	if err != nil {
		return nil, fmt.Errorf("partition: %w", err)
	}
	if m.s.Dialect().Name() == "mysql" {
		// MySQL's ranges only grow at their end, from the last partition's bound, in one ALTER TABLE; the first
		// partition of a table takes every bucket below its bound.
		end, cuts := int64(math.MinInt64), []int64{}
		for _, p := range parts {
			if !p.CatchAll {
				end = p.Hi
			}
		}
		if end == math.MinInt64 {
			end = first
			if n > 0 && lo < first {
				cuts = append(cuts, lo)
			}
		}
		for b := end; b <= last+1; b++ {
			cuts = append(cuts, b)
		}
		if len(cuts) < 2 {
			return nil, nil
		}
		if err := m.s.PartitionCreate(ctx, conn, m.cfg.Table, st.Period, cuts); err != nil {
			return nil, fmt.Errorf("partition: %w", err)
		}
		var out []store.Partition
		for i := 0; i+1 < len(cuts); i++ {
			out = append(out, store.Partition{Lo: cuts[i], Hi: cuts[i+1]})
		}
		m.cfg.Logger.InfoContext(ctx, "txbox partitions: created", "table", m.cfg.Table, "partitions", len(out))
		return out, nil
	}
	// PostgreSQL: one transaction per partition, newest first, so that the catch-all stops taking rows as soon
	// as possible; a bucket whose rows still arrive in the catch-all fails and is left for a later run.
	var want [][2]int64
	for b := last; b >= first; b-- {
		if !covered(parts, b) {
			want = append(want, [2]int64{b, b + 1})
		}
	}
	if n > 0 && lo < first {
		want = append(want, uncovered(parts, lo, first)...)
	}
	var out []store.Partition
	var errs []error
	for _, w := range want {
		if err := m.s.PartitionCreate(ctx, conn, m.cfg.Table, st.Period, w[:]); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, store.Partition{Lo: w[0], Hi: w[1]})
	}
	if len(out) > 0 {
		m.cfg.Logger.InfoContext(ctx, "txbox partitions: created", "table", m.cfg.Table, "partitions", len(out))
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("partition: %w", err)
	}
	return out, nil
}

// uncovered returns the ranges of buckets in [lo, hi) that no partition takes.
func uncovered(parts []store.Partition, lo, hi int64) [][2]int64 {
	var out [][2]int64
	start := int64(math.MinInt64)
	flush := func(end int64) {
		if start != math.MinInt64 {
			out = append(out, [2]int64{start, end})
		}
		start = math.MinInt64
	}
	for b := lo; b < hi; {
		if covered(parts, b) {
			flush(b)
			b = nextStart(parts, b)
			continue
		}
		if start == math.MinInt64 {
			start = b
		}
		// Jump to the next partition's start: ranges can span many buckets.
		next := hi
		for _, p := range parts {
			if !p.CatchAll && p.Lo > b && p.Lo < next {
				next = p.Lo
			}
		}
		b = next
	}
	flush(hi)
	return out
}

// nextStart is the end of the partition that takes bucket b.
func nextStart(parts []store.Partition, b int64) int64 {
	for _, p := range parts {
		if !p.CatchAll && p.Lo <= b && b < p.Hi {
			return p.Hi
		}
	}
	return b + 1
}

// expired reports whether every row partition p can hold is older than the table's retention: rows of bucket
// b are written before the start of bucket b+1.
func expired(st store.PartitionState, p store.Partition) bool {
	return !p.CatchAll && p.Hi < 1<<62 && !store.BucketStart(p.Hi, st.Period).Add(st.Retention).After(st.Now)
}

func (m *Manager) drop(ctx context.Context, conn *sql.Conn, st store.PartitionState, parts []store.Partition, cur int64) ([]store.Partition, int, error) {
	var dropped []store.Partition
	carried := 0
	for _, p := range parts {
		if !expired(st, p) {
			continue
		}
		if m.cfg.Table == store.InboxKeysTable {
			n, err := m.carry(ctx, p, cur)
			carried += n
			if err != nil {
				return dropped, carried, err
			}
		}
		if err := m.s.PartitionDrop(ctx, conn, m.cfg.Table, p); err != nil {
			return dropped, carried, fmt.Errorf("partition: %w", err)
		}
		m.cfg.Logger.InfoContext(ctx, "txbox partitions: dropped an expired partition", "table", m.cfg.Table,
			"partition", p.Name, "rows_before", store.BucketStart(p.Hi, st.Period))
		dropped = append(dropped, p)
	}
	return dropped, carried, nil
}

// carry copies the parked keys of p into bucket to, in a READ COMMITTED transaction of its own.
func (m *Manager) carry(ctx context.Context, p store.Partition, to int64) (int, error) {
	tx, err := m.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("partition: %w", m.s.Dialect().InterpretError(err))
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	n, err := m.s.PartitionCarryParked(ctx, tx, p, to)
	if err != nil {
		return 0, fmt.Errorf("partition: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("partition: carry parked keys of %s: %w", p.Name, m.s.Dialect().InterpretError(err))
	}
	if n > 0 {
		m.cfg.Logger.InfoContext(ctx, "txbox partitions: carried parked keys into the current partition",
			"table", m.cfg.Table, "partition", p.Name, "keys", n)
	}
	return n, nil
}
