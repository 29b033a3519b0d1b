package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/tracing"
	"github.com/txbox/txbox/outbox"
)

// outcome is what publishing a batch produced.
type outcome struct {
	published []store.OutboxRowRef
	retry     []store.OutboxRetryRow
	bury      []store.OutboxRetryRow
	held      int
}

// publishAll publishes rows concurrently: each row without a sharding key on its own, the rows of one sharding
// key one after another in id order. When a row of a key fails, the key's later rows in the batch are not
// attempted (they stay in the outbox, untouched), so they can never overtake it. Every Publish call of the
// batch shares one deadline, PublishTimeout from now; rows not started by then stay untouched too.
func (w *worker) publishAll(ctx context.Context, rows []store.OutboxRow) *outcome {
	groups := make(map[string][]int)
	var singles [][]int
	for i := range rows {
		if rows[i].Partition < 0 || rows[i].ShardingKey == "" {
			singles = append(singles, []int{i})
			continue
		}
		groups[rows[i].ShardingKey] = append(groups[rows[i].ShardingKey], i)
	}
	// Sharding keys first, longest first: their rows go one after another, so they set the batch's length.
	order := make([][]int, 0, len(groups)+len(singles))
	for _, g := range groups {
		order = append(order, g) // rows are in id order: claimKeyed sorted them
	}
	slices.SortFunc(order, func(a, b []int) int { return len(b) - len(a) })
	order = append(order, singles...)

	pctx, cancel := context.WithTimeout(ctx, w.r.cfg.PublishTimeout)
	defer cancel()
	// Each row's result has its own slot, written by the one goroutine that publishes it: no lock per row.
	tried := make([]bool, len(rows))
	errs := make([]error, len(rows))
	var next atomic.Int64
	publish := func() {
		for {
			gi := int(next.Add(1) - 1)
			if gi >= len(order) {
				return
			}
			for _, i := range order[gi] {
				if pctx.Err() != nil {
					break // out of time: the rest of the batch stays untouched, no attempt counted
				}
				tried[i] = true
				if errs[i] = w.publishOne(pctx, &rows[i]); errs[i] != nil {
					break
				}
			}
		}
	}
	if n := min(len(order), w.r.cfg.PublishConcurrency); n > 1 {
		var wg sync.WaitGroup
		for range n {
			wg.Go(publish)
		}
		wg.Wait()
	} else {
		publish()
	}

	out := &outcome{published: make([]store.OutboxRowRef, 0, len(rows))}
	for i := range rows {
		row := &rows[i]
		switch {
		case !tried[i]:
			out.held++
		case errs[i] == nil:
			out.published = append(out.published, store.OutboxRowRef{ID: row.ID, Partition: row.Partition})
		default:
			out.failed(w.r, row, errs[i])
		}
	}
	return out
}

// failed files a failed publish: a retry with backoff, or the dead-letter table.
func (o *outcome) failed(r *Relay, row *store.OutboxRow, err error) {
	attempt := row.Attempts + 1
	dead := attempt >= r.cfg.MaxAttempts || errors.Is(err, ErrPermanent)
	if dead {
		o.bury = append(o.bury, store.OutboxRetryRow{ID: row.ID, Partition: row.Partition, Error: err.Error()})
	} else {
		o.retry = append(o.retry, store.OutboxRetryRow{ID: row.ID, Partition: row.Partition, Delay: r.backoff(attempt), Error: err.Error()})
	}
	r.log.Warn("relay: publish failed", "outbox_id", row.ID, "topic", row.Topic, "key", row.Key, "attempt", attempt,
		"dead", dead, "error", err)
}

func (w *worker) publishOne(ctx context.Context, row *store.OutboxRow) (err error) {
	rec, err := record(row)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPermanent, err)
	}
	ctx, span := tracing.Send(ctx, w.r.cfg.TracerProvider, rec.Headers, rec.Topic, rec.Key, rec.ID, rec.Attempt)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPublishPanic, p)
		}
		tracing.End(span, err)
	}()
	return w.r.cfg.Publisher.Publish(ctx, rec)
}

// record is the Record a Publisher gets for row.
func record(row *store.OutboxRow) (outbox.Record, error) {
	h, err := outbox.DecodeHeaders(row.Headers)
	if err != nil {
		return outbox.Record{}, err
	}
	return outbox.Record{
		ID:        row.ID,
		Attempt:   row.Attempts + 1,
		CreatedAt: row.CreatedAt,
		Message: outbox.Message{Topic: row.Topic, Key: row.Key, Tag: row.Tag, ShardingKey: row.ShardingKey,
			Payload: row.Payload, Headers: h},
	}, nil
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
