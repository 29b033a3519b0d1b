package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// Purge deletes the consumer's keys recorded more than Retention ago, and failure counters untouched for as
// long, and returns how many keys it deleted. It works in batches of PurgeBatchSize rows, oldest first, each
// one statement in its own short READ COMMITTED transaction, so it never holds many locks or holds them long,
// and Process keeps running meanwhile. Keys of parked messages are kept until they are replayed or dropped.
// When ctx ends Purge stops after the current batch and returns what it deleted with the ctx error.
//
// With the partitioned layout, Purge first maintains the partitions of <prefix>_inbox_keys, for every consumer
// of the table: it makes the partitions of the next periods and drops, whole, the partitions whose keys are all
// older than the table's retention (the longest Retention its consumers declared), after copying their parked
// keys into the current partition. Dropped keys are not counted in the result; the count is of keys deleted
// from <prefix>_inbox, which is read-only after a conversion and drains this way.
func (i *Inbox) Purge(ctx context.Context) (int, error) {
	keysLayout, err := i.keysLayout(ctx)
	if err != nil {
		return 0, err
	}
	var merr error
	if keysLayout != nil {
		if _, merr = i.maintainPartitions(ctx); merr != nil && ctx.Err() != nil {
			return 0, merr
		}
	}
	p := store.InboxPurgeParams{Consumer: i.cfg.Consumer, OlderThan: i.cfg.Retention,
		Limit: i.cfg.PurgeBatchSize}
	keys, err := i.purgeAll(ctx, "keys", &p, i.s.InboxPurge)
	if err != nil {
		return keys, errors.Join(merr, err)
	}
	attempts, err := i.purgeAll(ctx, "attempts", &p, i.s.InboxPurgeAttempts)
	i.log.DebugContext(ctx, "inbox: purged", "keys", keys, "attempts", attempts)
	return keys, errors.Join(merr, err)
}

type purgeFunc func(ctx context.Context, tx store.DBTX, p *store.InboxPurgeParams) (int, error)

func (i *Inbox) purgeAll(ctx context.Context, what string, p *store.InboxPurgeParams, f purgeFunc) (int, error) {
	total := 0
	for retries := 0; ; {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("inbox: purge %s: %w", what, err)
		}
		n, err := i.purgeBatch(ctx, p, f)
		total += n
		switch {
		case err != nil && isRetryable(err) && retries < i.cfg.RetryLimit:
			if !sleepCtx(ctx, i.backoff(retries)) {
				return total, fmt.Errorf("inbox: purge %s: %w", what, ctx.Err())
			}
			retries++
		case err != nil:
			return total, fmt.Errorf("inbox: purge %s: %w", what, explain(err))
		case n < p.Limit:
			return total, nil
		default:
			retries = 0
		}
	}
}

// purgeBatch deletes one batch in its own transaction. READ COMMITTED keeps MySQL from taking gap locks on the
// purge index, which could hold up inserts of new keys for the length of the batch; PostgreSQL's default.
func (i *Inbox) purgeBatch(ctx context.Context, p *store.InboxPurgeParams, f purgeFunc) (int, error) {
	tx, err := i.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, fmt.Errorf("begin transaction: %w", i.d.InterpretError(err))
	}
	defer rollback(tx)
	n, err := f(ctx, tx, p)
	if err != nil {
		return 0, err
	}
	if i.afterPurgeBatch != nil {
		i.afterPurgeBatch(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", i.d.InterpretError(err))
	}
	return n, nil
}

// RunPurger calls Purge now and then every PurgeInterval until ctx ends, logging failures (the next run
// retries). It returns nil when ctx ends; an in-flight batch is rolled back, which loses nothing.
func (i *Inbox) RunPurger(ctx context.Context) error {
	t := time.NewTicker(i.cfg.PurgeInterval)
	defer t.Stop()
	for {
		if _, err := i.Purge(ctx); err != nil && ctx.Err() == nil {
			i.log.WarnContext(ctx, "inbox: purge failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
