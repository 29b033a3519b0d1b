package inbox

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"
)

// EffectDeadFilter selects parked effects for Effects.ListDead.
type EffectDeadFilter struct {
	Key      string // only this key, when not empty
	AfterKey string // only keys after this one in byte order: pass the last key of a page to get the next page
	Limit    int    // page size; default 100, at most 1000
}

// ListDead lists the consumer's parked effects in byte order of their keys, one page at a time (see
// EffectDeadFilter).
func (e *Effects) ListDead(ctx context.Context, f EffectDeadFilter) ([]EffectDeadLetter, error) {
	switch {
	case f.Limit == 0:
		f.Limit = 100
	case f.Limit < 0 || f.Limit > 1000:
		return nil, fmt.Errorf("inbox: list parked effects: Limit must be between 1 and 1000, got %d", f.Limit)
	}
	out, err := e.st.ListParkedEffects(ctx, &EffectDeadListParams{Consumer: e.cfg.Consumer, Key: f.Key,
		AfterKey: f.AfterKey, Limit: f.Limit})
	if err != nil {
		return nil, fmt.Errorf("inbox: list parked effects: %w", explain(err))
	}
	return out, nil
}

// Replay runs fn once more for the parked effect of key, from its stored delivery, under a new lease (with
// the same idempotency key: the downstream system may have acted before). When fn succeeds its result is saved
// and the key is completed (later deliveries are Duplicate): Replay returns Processed. When it fails the key is
// parked again at once with the new error, and Replay returns Failed with it. A key that is not parked (never
// was, or replayed or dropped already, even concurrently) returns ErrDeadNotFound and runs nothing.
func (e *Effects) Replay(ctx context.Context, key string, fn EffectFunc) (Result, error) {
	if fn == nil {
		return Failed, fmt.Errorf("inbox: replay effect of key %q: nil EffectFunc", key)
	}
	owner := make([]byte, 16)
	_, _ = rand.Read(owner)
	dl, found, err := e.st.TakeParkedEffect(ctx, &EffectTakeParkedParams{Consumer: e.cfg.Consumer, Key: key,
		Owner: owner, Lease: e.cfg.Lease, Retention: e.cfg.Retention})
	switch {
	case err != nil:
		return Failed, fmt.Errorf("inbox: replay effect of key %q: %w", key, explain(err))
	case !found:
		return Failed, fmt.Errorf("%w: no parked effect of key %q, consumer %q", ErrDeadNotFound, key, e.cfg.Consumer)
	}
	c := &Claim{Key: key, Status: EffectAcquired, Attempt: dl.Attempts + 1, fx: e, owner: owner, d: dl.Delivery}
	e.log.InfoContext(ctx, "inbox: replaying a parked effect", "key", key, "attempt", c.Attempt)
	return c.run(ctx, fn, true)
}

// DropDead gives up the parked effect of key without running anything: the key is recorded as completed
// without a result, so that later deliveries are acknowledged as Duplicate, until Retention passes. It returns
// ErrDeadNotFound when the key is not parked.
func (e *Effects) DropDead(ctx context.Context, key string) error {
	ok, err := e.st.DropParkedEffect(ctx, &EffectKeyParams{Consumer: e.cfg.Consumer, Key: key, Retention: e.cfg.Retention})
	switch {
	case err != nil:
		return fmt.Errorf("inbox: drop parked effect of key %q: %w", key, explain(err))
	case !ok:
		return fmt.Errorf("%w: no parked effect of key %q, consumer %q", ErrDeadNotFound, key, e.cfg.Consumer)
	}
	e.log.InfoContext(ctx, "inbox: parked effect dropped", "key", key)
	return nil
}

// Purge deletes the consumer's records first begun more than Retention ago, except parked ones and
// running ones under a live lease, and returns how many it deleted: in batches of PurgeBatchSize, each in a
// short transaction of its own (SQL). Redis records expire by themselves: there it deletes nothing. When ctx
// ends Purge stops after the current batch and returns what it deleted with the ctx error.
func (e *Effects) Purge(ctx context.Context) (int, error) {
	p := EffectPurgeParams{Consumer: e.cfg.Consumer, OlderThan: e.cfg.Retention, Limit: e.cfg.PurgeBatchSize}
	total, retries := 0, 0
	for ctx.Err() == nil {
		n, err := e.st.PurgeEffects(ctx, &p)
		total += n
		if err != nil && isRetryable(err) && retries < DefaultRetryLimit {
			retries++
			sleepCtx(ctx, time.Duration(retries)*DefaultRetryBackoff)
			continue
		}
		if err != nil {
			return total, fmt.Errorf("inbox: purge effects: %w", explain(err))
		}
		if n < p.Limit {
			e.log.DebugContext(ctx, "inbox: effects purged", "records", total)
			return total, nil
		}
		retries = 0
	}
	return total, fmt.Errorf("inbox: purge effects: %w", ctx.Err())
}

// RunPurger calls Purge now and then every PurgeInterval until ctx ends, logging failures (the next run
// retries). It returns nil when ctx ends.
func (e *Effects) RunPurger(ctx context.Context) error {
	t := time.NewTicker(e.cfg.PurgeInterval)
	defer t.Stop()
	for {
		if _, err := e.Purge(ctx); err != nil && ctx.Err() == nil {
			e.log.WarnContext(ctx, "inbox: purging effects failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
