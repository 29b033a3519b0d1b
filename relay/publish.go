package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
)

// outcome is what publishing a batch produced.
type outcome struct {
	mu        sync.Mutex
	published []dialect.OutboxRowRef
	retry     []dialect.OutboxRetryRow
	bury      []dialect.OutboxBuryRow
	held      int
}

// publishAll publishes rows concurrently: each row without a sharding key on its own, the rows of one sharding
// key one after another in id order. When a row of a key fails, the key's later rows in the batch are not
// attempted (they stay in the outbox, untouched), so they can never overtake it.
func (w *worker) publishAll(ctx context.Context, rows []dialect.OutboxRow) *outcome {
	out := &outcome{}
	groups := make(map[string][]*dialect.OutboxRow)
	var singles [][]*dialect.OutboxRow
	for i := range rows {
		row := &rows[i]
		if row.Partition < 0 || row.ShardingKey == "" {
			singles = append(singles, []*dialect.OutboxRow{row})
			continue
		}
		groups[row.ShardingKey] = append(groups[row.ShardingKey], row)
	}
	// Sharding keys first, longest first: their rows go one after another, so they set the batch's length.
	order := make([][]*dialect.OutboxRow, 0, len(groups)+len(singles))
	for _, g := range groups {
		order = append(order, g) // rows are in id order: claimKeyed sorted them
	}
	slices.SortFunc(order, func(a, b []*dialect.OutboxRow) int { return len(b) - len(a) })
	order = append(order, singles...)
	// A fixed pool takes groups from a channel: cheaper than a goroutine per group when most groups are one
	// unkeyed row.
	work := make(chan []*dialect.OutboxRow)
	var wg sync.WaitGroup
	for range min(len(order), w.r.cfg.PublishConcurrency) {
		wg.Go(func() {
			for g := range work {
				for i, row := range g {
					if !out.record(w.r, row, w.publishOne(ctx, row)) {
						out.mu.Lock()
						out.held += len(g) - i - 1
						out.mu.Unlock()
						break
					}
				}
			}
		})
	}
	for _, g := range order {
		work <- g
	}
	close(work)
	wg.Wait()
	return out
}

// record files one publish result and reports whether it succeeded.
func (o *outcome) record(r *Relay, row *dialect.OutboxRow, err error) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.published = append(o.published, dialect.OutboxRowRef{ID: row.ID, Partition: row.Partition})
		return true
	}
	attempt := row.Attempts + 1
	if attempt >= r.cfg.MaxAttempts || errors.Is(err, ErrPermanent) {
		o.bury = append(o.bury, dialect.OutboxBuryRow{ID: row.ID, Partition: row.Partition, Error: err.Error()})
	} else {
		o.retry = append(o.retry, dialect.OutboxRetryRow{ID: row.ID, Partition: row.Partition, Delay: r.backoff(attempt), Error: err.Error()})
	}
	r.log.Warn("relay: publish failed", "id", row.ID, "topic", row.Topic, "attempt", attempt, "err", err)
	return false
}

func (w *worker) publishOne(ctx context.Context, row *dialect.OutboxRow) (err error) {
	rec, err := outbox.RecordFromRow(row)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPublishPanic, p)
		}
	}()
	pctx, cancel := context.WithTimeout(ctx, w.r.cfg.PublishTimeout)
	defer cancel()
	return w.r.cfg.Publisher.Publish(pctx, rec)
}

// backoff is the delay after the attempt-th failure: MinBackoff doubled per earlier failure, capped at
// MaxBackoff, drawn uniformly from [d/2, d] so that rows failing together do not retry together.
func (r *Relay) backoff(attempt int) time.Duration {
	d := r.cfg.MinBackoff
	for i := 1; i < attempt && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.cfg.MaxBackoff)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
