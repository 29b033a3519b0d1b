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

// outcome is what publishing a batch produced: for OutboxFinish, and the batch's counts.
type outcome struct {
	published []store.OutboxRowRef
	retry     []store.OutboxRetryRow
	bury      []store.OutboxRetryRow
	release   []store.OutboxRowRef // not attempted, or unavailable while the topic's breaker was closed
	hold      []store.OutboxRowRef // held for an outage of their topic
	held      int                  // rows given back untouched (not attempted)
	// unavailable counts rows given back or held because their broker was unavailable.
	unavailable int
	// holds maps each breaker the batch held rows for to its epoch at the time: when a breaker closed (or
	// closed and opened again) before the holds were written, the batch makes them due itself.
	holds map[*breaker]uint64
	// closed are the breakers a publish of this batch closed: their held rows are due now.
	closed []*breaker
	fails  failures
}

// row states in publishAll.
const (
	notTried = iota
	tried
	outage // not admitted: the topic's breaker is open
)

// publishAll publishes rows concurrently: each row without a sharding key on its own, the rows of one sharding
// key one after another in id order. When a row of a key fails (or its topic's breaker is open), the key's later
// rows in the batch are not attempted (they are released untouched), so they can never overtake it. Every
// Publish call runs under ctx, which ends at the batch's deadline (see batchLease); rows not started by then are
// released too.
func (w *worker) publishAll(ctx context.Context, rows []store.OutboxRow) *outcome {
	r := w.r
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
		order = append(order, g) // rows are in id order: the claims return them so
	}
	slices.SortFunc(order, func(a, b []int) int { return len(b) - len(a) })
	order = append(order, singles...)

	// Each row's result has its own slot, written by the one goroutine that publishes it: no lock per row.
	state := make([]int, len(rows))
	errs := make([]error, len(rows))
	out := &outcome{}
	// Topics with several rows in the batch may probe an open breaker once at once (see breaker.admit).
	perTopic := map[string]int{}
	for i := range rows {
		perTopic[rows[i].Topic]++
	}
	var mu sync.Mutex // guards out.closed and bulkProbed
	bulkProbed := map[*breaker]bool{}
	bulk := func(b *breaker) bool {
		if perTopic[b.topic] < 2 {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		first := !bulkProbed[b]
		bulkProbed[b] = true
		return first
	}
	var next atomic.Int64
	publish := func() {
		for {
			gi := int(next.Add(1) - 1)
			if gi >= len(order) {
				return
			}
			for _, i := range order[gi] {
				if ctx.Err() != nil {
					break // out of time: the rest of the batch is released untouched, no attempt counted
				}
				b := r.breakers.get(rows[i].Topic)
				if open, _ := b.state(); open && !b.admit(time.Now(), r.cfg.ProbeInterval, bulk(b)) {
					state[i] = outage
					break
				}
				state[i] = tried
				errs[i] = w.publishOne(ctx, &rows[i])
				switch t, lasted := b.done(errs[i], time.Now()); t {
				case opened:
					r.breakerOpened(ctx, b)
				case closed:
					r.breakerClosed(ctx, b.topic, lasted)
					mu.Lock()
					out.closed = append(out.closed, b)
					mu.Unlock()
				}
				if errs[i] != nil {
					break
				}
			}
		}
	}
	if n := min(len(order), r.cfg.PublishConcurrency); n > 1 {
		var wg sync.WaitGroup
		for range n {
			wg.Go(publish)
		}
		wg.Wait()
	} else {
		publish()
	}

	out.published = make([]store.OutboxRowRef, 0, len(rows))
	for i := range rows {
		row := &rows[i]
		ref := store.OutboxRowRef{ID: row.ID, Partition: row.Partition}
		switch {
		case state[i] == notTried:
			out.held++
			out.release = append(out.release, ref)
		case state[i] == outage:
			out.unavailable++
			out.holdFor(r.breakers.get(row.Topic), ref)
		case errs[i] == nil:
			out.published = append(out.published, ref)
		case errors.Is(context.Cause(ctx), errLeaseDeadline) &&
			(errors.Is(errs[i], errLeaseDeadline) || errors.Is(errs[i], context.Canceled)):
			// Cut off by the batch's lease deadline (renewals failed or came late: the database, not the row):
			// released without an attempt; if the broker got it after all, it is published again.
			out.held++
			out.release = append(out.release, ref)
		case errors.Is(errs[i], ErrUnavailable):
			out.unavailable++
			b := r.breakers.get(row.Topic)
			if open, _ := b.state(); open {
				out.holdFor(b, ref)
			} else {
				out.release = append(out.release, ref)
			}
			w.debugFailure(ctx, row, errs[i], "unavailable")
		default:
			out.failed(w, row, errs[i])
		}
	}
	return out
}

// holdFor holds a row for its topic's outage, remembering the breaker's epoch.
func (o *outcome) holdFor(b *breaker, ref store.OutboxRowRef) {
	if o.holds == nil {
		o.holds = map[*breaker]uint64{}
	}
	_, epoch := b.state()
	o.holds[b] = epoch
	o.hold = append(o.hold, ref)
}

// failed files a failed publish: a retry with backoff, or the dead-letter table.
func (o *outcome) failed(w *worker, row *store.OutboxRow, err error) {
	r := w.r
	attempt := row.Attempts + 1
	dead := attempt >= r.cfg.MaxAttempts || errors.Is(err, ErrPermanent)
	if dead {
		o.bury = append(o.bury, store.OutboxRetryRow{ID: row.ID, Partition: row.Partition, Error: err.Error()})
	} else {
		o.retry = append(o.retry, store.OutboxRetryRow{ID: row.ID, Partition: row.Partition, Delay: r.backoff(attempt), Error: err.Error()})
	}
	o.fails.add(row.Topic, row.Key, err, dead)
	what := "retry"
	if dead {
		what = "dead letter"
	}
	w.debugFailure(context.Background(), row, err, what)
}

func (w *worker) debugFailure(ctx context.Context, row *store.OutboxRow, err error, what string) {
	w.r.log.DebugContext(ctx, "relay: publish failed", "worker", w.id, "outbox_id", row.ID, "topic", row.Topic,
		"key", row.Key, "attempt", row.Attempts+1, "then", what, "error", err)
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
