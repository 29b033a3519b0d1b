package relay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/partition"
	"github.com/txbox/txbox/internal/store"
)

// publishedPurgeLimit is how many published rows one purge statement deletes: small transactions that never
// hold many locks at once.
const publishedPurgeLimit = 1000

// PurgePublished deletes the rows kept in the published table (<prefix>_outbox_published) that were published longer than
// Config.Retention ago, in batches of 1,000, and returns how many it deleted. Run calls it periodically; with
// Retention 0 it does nothing.
//
// When the published table is partitioned by publishing time (a new installation created with
// migrations.WithPartitioned, or one converted with `txbox partitions convert`), PurgePublished instead makes
// the partitions of the next periods and drops whole the partitions whose rows were all published longer than
// the table's retention ago (the longest Retention of the relays that share it), whatever their number; it
// returns 0, the rows of dropped partitions are not counted.
func (r *Relay) PurgePublished(ctx context.Context) (int, error) {
	if r.cfg.Retention <= 0 {
		return 0, nil
	}
	st, err := r.s.PartitionState(ctx, r.db, store.PublishedTable)
	switch {
	case err == nil && st.Mode == store.Partitioned:
		return 0, r.dropPublished(ctx)
	case err != nil && !errors.Is(err, dialect.ErrSchemaMissing):
		return 0, fmt.Errorf("relay: purge %s: %w", r.t.OutboxPublished, err)
	}
	total := 0
	for {
		n, err := r.purgeBatch(ctx)
		total += n
		if err != nil {
			return total, fmt.Errorf("relay: purge %s: %w", r.t.OutboxPublished, err)
		}
		if n < publishedPurgeLimit || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}

// dropPublished maintains the partitions of the published table.
func (r *Relay) dropPublished(ctx context.Context) error {
	pm, err := partition.New(r.db.DB, r.s, partition.Config{Table: store.PublishedTable,
		Retention: max(r.cfg.Retention, time.Second), Logger: r.log})
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	rep, err := pm.Maintain(ctx)
	if len(rep.Dropped) > 0 {
		r.log.DebugContext(ctx, "relay: dropped expired partitions of the published table", "table", r.t.OutboxPublished,
			"partitions", len(rep.Dropped))
	}
	if err != nil {
		return fmt.Errorf("relay: purge %s: %w", r.t.OutboxPublished, err)
	}
	return nil
}

// purgeBatch runs one purge statement in a READ COMMITTED transaction, so that MySQL locks only the rows it
// deletes (no gap locks in the way of relays moving rows in).
func (r *Relay) purgeBatch(ctx context.Context) (int, error) {
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, r.cfg.Dialect.InterpretError(err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	n, err := r.s.OutboxPurgePublished(ctx, tx, r.cfg.Retention, publishedPurgeLimit)
	if err != nil {
		return 0, err
	}
	return n, r.cfg.Dialect.InterpretError(tx.Commit())
}

// purgeLoop runs PurgePublished about every min(Retention, 1m) until ctx ends.
func (r *Relay) purgeLoop(ctx context.Context) {
	every := min(r.cfg.Retention, time.Minute)
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := r.PurgePublished(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.WarnContext(ctx, "relay: purging published rows failed; trying again later", "table", r.t.OutboxPublished,
				"deleted", n, "error", err)
		case n > 0:
			r.log.DebugContext(ctx, "relay: purged published rows", "table", r.t.OutboxPublished, "deleted", n)
		}
		t.Reset(every)
	}
}
