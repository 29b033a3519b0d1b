package partition

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// LayoutRefresh is how long a process trusts the layout it read: an Inbox reads <prefix>_partitions again
// after it.
const LayoutRefresh = 30 * time.Second

// DefaultSettle is how long ConvertInboxFinish waits after ConvertInboxStart by default: LayoutRefresh, for
// every process to see the conversion, plus the default claim window (the default HandlerTimeout of a minute
// and a minute's margin), for claims made before it to end.
const DefaultSettle = LayoutRefresh + 2*time.Minute

// ErrTooEarly is returned by ConvertInboxFinish when the conversion started less than the settle time ago.
var ErrTooEarly = errors.New("too early")

// ErrLegacyWriters is returned by ConvertInboxFinish when keys were recorded in <prefix>_inbox only after every
// process should have been recording them in both tables: a process runs a txbox that does not know the
// partitioned layout.
var ErrLegacyWriters = errors.New("keys recorded in the unpartitioned table only")

// ConvertInboxStart begins the conversion of the inbox keys to the partitioned layout: it sets the table's
// period (from cfg.Retention, or cfg.Period) and retention, switches the mode to Converting, in which every
// claim records its key in both tables, and makes the partitions. Processes of this txbox follow within
// LayoutRefresh; older ones go on recording keys in <prefix>_inbox only, and still meet the others on its
// primary key. It does nothing to an inbox that converts already, and fails for one that is partitioned.
func ConvertInboxStart(ctx context.Context, db *sql.DB, s store.Store, cfg Config) (store.PartitionState, error) {
	cfg.Table = store.InboxKeysTable
	m, err := New(db, s, cfg)
	if err != nil {
		return store.PartitionState{}, err
	}
	st, err := m.Declare(ctx)
	if err != nil {
		return st, err
	}
	switch st.Mode {
	case store.Partitioned:
		return st, errors.New("partition: the inbox keys are partitioned already")
	case store.Unpartitioned:
		if _, err := s.PartitionSetMode(ctx, db, store.InboxKeysTable, store.Unpartitioned, store.Converting); err != nil {
			return st, fmt.Errorf("partition: %w", err)
		}
	}
	r, err := m.Maintain(ctx)
	return r.State, err
}

// ConvertInboxFinish ends the conversion: from then on keys are recorded in the partitioned table only, and
// looked up in <prefix>_inbox too until the keys recorded there have expired (Inbox.Purge deletes them). It
// refuses (ErrTooEarly) until settle has passed since ConvertInboxStart, so that every process records keys in
// both tables and no claim made before is still open; and (ErrLegacyWriters) while keys recorded within the
// last settle time exist in <prefix>_inbox only, the mark of a process that still runs a txbox without the
// partitioned layout. Upgrade such processes first: once the inbox is partitioned they would no longer meet the
// others on a key. The check sees only processes that recorded keys lately; an idle old process is the
// operator's to know of.
func ConvertInboxFinish(ctx context.Context, db *sql.DB, s store.Store, settle time.Duration) error {
	st, err := s.PartitionState(ctx, db, store.InboxKeysTable)
	if err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	switch st.Mode {
	case store.Partitioned:
		return nil
	case store.Unpartitioned:
		return errors.New("partition: the inbox does not convert: start the conversion first")
	}
	if wait := st.ChangedAt.Add(settle).Sub(st.Now); wait > 0 {
		return fmt.Errorf("partition: %w: the conversion started %s ago; finish it in %s, once every process records "+
			"keys in both tables", ErrTooEarly, st.Now.Sub(st.ChangedAt).Round(time.Second), wait.Round(time.Second))
	}
	// Keys recorded the old way within the last settle time (and after every process could know better).
	since := st.ChangedAt.Add(settle)
	if recent := st.Now.Add(-settle); recent.After(since) {
		since = recent
	}
	keys, err := s.InboxLegacyOnly(ctx, db, since, 5)
	if err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	if len(keys) > 0 {
		return fmt.Errorf("partition: %w since %s (e.g. %s): a process records keys without the partitioned layout; "+
			"upgrade it, wait %s and finish again", ErrLegacyWriters, since.Format(time.RFC3339), strings.Join(keys, ", "), settle)
	}
	if _, err := s.PartitionSetMode(ctx, db, store.InboxKeysTable, store.Converting, store.Partitioned); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	return nil
}

// ConvertInboxAbort goes back from Converting to the unpartitioned layout (the keys in <prefix>_inbox are
// complete while converting); the partitioned table's rows stay until the next conversion.
func ConvertInboxAbort(ctx context.Context, db *sql.DB, s store.Store) error {
	ok, err := s.PartitionSetMode(ctx, db, store.InboxKeysTable, store.Converting, store.Unpartitioned)
	if err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	if !ok {
		return errors.New("partition: the inbox does not convert (a partitioned inbox cannot go back)")
	}
	return nil
}

// ConvertPublished makes the published table partitioned: the plain table is swapped for a partitioned one
// under its name (relays write on without a pause), its rows are copied over in batches of batch, oldest
// first, and it is dropped. progress, if set, is called after every batch with the rows copied so far. Run
// again after an interruption, it goes on copying.
func ConvertPublished(ctx context.Context, db *sql.DB, s store.Store, cfg Config, batch int, progress func(int)) error {
	cfg.Table = store.PublishedTable
	m, err := New(db, s, cfg)
	if err != nil {
		return err
	}
	st, err := m.Declare(ctx)
	if err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("partition: %w", s.Dialect().InterpretError(err))
	}
	defer store.DiscardConn(conn)
	if err := s.PartitionPrepareDDL(ctx, conn, m.cfg.LockWait); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	if st.Mode != store.Partitioned {
		if err := s.PublishedSwap(ctx, conn); err != nil {
			return fmt.Errorf("partition: %w", err)
		}
	}
	if _, err := m.Maintain(ctx); err != nil {
		return err
	}
	old, err := s.PublishedOldExists(ctx, db)
	if err != nil || !old {
		return err
	}
	// Rows older than the retention are expired: left behind. A run interrupted and started again copies from
	// the start; rows copied before are skipped.
	since := st.Now.Add(-st.Retention)
	var after int64
	total := 0
	for {
		last, n, err := s.PublishedCopyOld(ctx, db, after, since, batch)
		if err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		if n == 0 {
			break
		}
		after, total = last, total+n
		if progress != nil {
			progress(total)
		}
	}
	if err := s.PublishedDropOld(ctx, conn); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	_, err = m.Maintain(ctx) // the copied rows that were older than the partitions ahead left the catch-all
	return err
}
