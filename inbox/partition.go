package inbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/partition"
	"github.com/txbox/txbox/internal/store"
)

// layout caches the installation's layout of inbox keys.
type layout struct {
	mu     sync.Mutex
	keys   *store.KeysLayout // nil: unpartitioned
	loaded time.Time
	// missing is the bucket whose missing partition was last reported, so that it is reported once.
	missing int64
}

// keysLayout returns how claims record keys: nil for <prefix>_inbox, else the partitioned layout. It reads
// <prefix>_partitions at most every partition.LayoutRefresh; the first read of a partitioned layout declares this
// consumer's Retention (and sets the period of a new table).
func (i *Inbox) keysLayout(ctx context.Context) (*store.KeysLayout, error) {
	i.lay.mu.Lock()
	defer i.lay.mu.Unlock()
	refresh := partition.LayoutRefresh // a conversion's next step waits at least this long after the previous one
	if i.testRefresh > 0 {
		refresh = i.testRefresh
	}
	if i.testUnpartitioned || !i.lay.loaded.IsZero() && time.Since(i.lay.loaded) < refresh {
		return i.lay.keys, nil
	}
	st, err := i.s.PartitionState(ctx, i.db, store.InboxKeysTable)
	switch {
	case errors.Is(err, dialect.ErrSchemaMissing):
		// Migration 00007 has not run yet: the installation is unpartitioned.
		i.lay.keys, i.lay.loaded = nil, time.Now()
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("inbox: read the layout of inbox keys: %w", err)
	case st.Mode == store.Unpartitioned:
		i.lay.keys, i.lay.loaded = nil, time.Now()
		return nil, nil
	}
	if st.Period == 0 || st.Retention < i.cfg.Retention {
		if st, err = i.s.PartitionDeclare(ctx, i.db, store.InboxKeysTable, i.period(), i.cfg.Retention); err != nil {
			return nil, fmt.Errorf("inbox: declare retention: %w", err)
		}
	}
	l := &store.KeysLayout{Mode: st.Mode, Period: st.Period, Retention: st.Retention, Window: i.cfg.ClaimWindow}
	if st.Mode == store.Partitioned {
		// Keys recorded before the conversion are looked up until the last of them has been purged.
		if l.Legacy, err = i.s.InboxLegacyKeys(ctx, i.db); err != nil {
			return nil, fmt.Errorf("inbox: %w", err)
		}
	}
	i.warnMissing(ctx, st)
	i.lay.keys, i.lay.loaded = l, time.Now()
	return l, nil
}

// warnMissing logs, once per bucket, when the next period has no partition yet: its keys would go to the
// catch-all partition (Process goes on; the purger or `txbox partitions maintain` makes the partition).
func (i *Inbox) warnMissing(ctx context.Context, st store.PartitionState) {
	next := st.Bucket(st.Now) + 1
	if next == i.lay.missing {
		return
	}
	parts, err := i.s.PartitionList(ctx, i.db, store.InboxKeysTable, st.Period)
	if err != nil {
		i.log.DebugContext(ctx, "inbox: cannot list partitions", "error", err)
		return
	}
	for _, p := range parts {
		if !p.CatchAll && p.Lo <= next && next < p.Hi {
			return
		}
	}
	i.lay.missing = next
	i.log.WarnContext(ctx, "inbox: no partition for the next period: its keys will go to the catch-all partition until "+
		"one is made (run RunPurger or `txbox partitions maintain`)", "table", i.s.Tables().InboxKeys,
		"period_start", store.BucketStart(next, st.Period))
}

// period is the partition period a new partitioned table gets from this Inbox.
func (i *Inbox) period() time.Duration {
	if i.testPeriod > 0 {
		return i.testPeriod
	}
	return partition.PeriodFor(i.cfg.Retention)
}

// claim records the key of p in tx, in the installation's layout.
func (i *Inbox) claim(ctx context.Context, tx store.DBTX, p *store.InboxClaimParams) (store.InboxClaimResult, error) {
	l, err := i.keysLayout(ctx)
	if err != nil {
		return store.InboxClaimResult{}, err
	}
	p.Keys = l
	return i.s.InboxClaim(ctx, tx, p)
}

// partitions returns the manager of the partitioned keys, made on first use.
func (i *Inbox) partitions() (*partition.Manager, error) {
	i.lay.mu.Lock()
	defer i.lay.mu.Unlock()
	if i.pm != nil {
		return i.pm, nil
	}
	pm, err := partition.New(i.db.DB, i.s, partition.Config{Table: store.InboxKeysTable, Retention: i.cfg.Retention,
		Period: i.period(), Logger: i.log, Now: i.appClock})
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", err)
	}
	i.pm = pm
	return pm, nil
}

// maintainPartitions makes and drops partitions of the keys table when the layout is partitioned.
func (i *Inbox) maintainPartitions(ctx context.Context) (partition.Report, error) {
	pm, err := i.partitions()
	if err != nil {
		return partition.Report{}, err
	}
	r, err := pm.Maintain(ctx)
	if err != nil {
		return r, fmt.Errorf("inbox: maintain partitions: %w", err)
	}
	if len(r.Dropped) > 0 || len(r.Created) > 0 {
		i.log.DebugContext(ctx, "inbox: partitions maintained", "created", len(r.Created), "dropped", len(r.Dropped),
			"carried_parked", r.Carried)
	}
	return r, nil
}
