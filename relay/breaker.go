package relay

import (
	"context"
	"errors"
	"sync"
	"time"
)

// breakerThreshold is how many publishes to a topic in a row must fail with ErrUnavailable, with no other
// outcome between them, before the topic's breaker opens. A single reset connection does not stop a topic; a
// broker that is down fails every publish in flight at once, so the breaker opens within a batch.
const breakerThreshold = 3

// outageHold is how long a row held for an outage stays not due. The relay that held it makes it due again as
// soon as the topic's broker answers; the hold only bounds the wait when that relay dies first. Long enough that
// a row is held once in most outages: with a minute, the rows of a 90s outage were claimed and held twice, and the
// churn slowed PostgreSQL's drain after it by 2-4x.
const outageHold = 5 * time.Minute

// breaker is one topic's circuit breaker. Closed, every publish goes through. Open (the broker was unreachable
// breakerThreshold times in a row), the topic's rows are held without counting attempts, and one publish may go
// through per ProbeInterval as a probe; the first success closes it.
type breaker struct {
	topic string

	mu        sync.Mutex
	fails     int // ErrUnavailable results in a row
	open      bool
	since     time.Time
	firstErr  error
	nextProbe time.Time // when the next probe may start (probes in flight do not hold it back: one may hang)
	unheld    time.Time // when the probe loop last made a held row due
	epoch     uint64    // incremented at every opening
}

// breakers holds the relay's breakers by topic.
type breakers struct {
	mu sync.Mutex
	m  map[string]*breaker
}

func (bs *breakers) get(topic string) *breaker {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.m[topic]
	if !ok {
		if bs.m == nil {
			bs.m = map[string]*breaker{}
		}
		b = &breaker{topic: topic}
		bs.m[topic] = b
	}
	return b
}

// opened returns the breakers that are open now.
func (bs *breakers) opened() []*breaker {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var out []*breaker
	for _, b := range bs.m {
		b.mu.Lock()
		if b.open {
			out = append(out, b)
		}
		b.mu.Unlock()
	}
	return out
}

// admit says whether a row of the topic may be published now. With the breaker open, one publish per
// ProbeInterval goes through as a probe, whether or not earlier probes have returned (a probe sent while the
// broker was coming back can hang until the client's timeout); with bulk set, one goes through at once: the
// batch found several rows of the topic due, which another relay's closed breaker (or new messages) made due,
// and waiting for the interval would hold them all again.
func (b *breaker) admit(now time.Time, every time.Duration, bulk bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case !b.open:
		return true
	case now.Before(b.nextProbe) && !bulk:
		return false
	}
	b.nextProbe = now.Add(every)
	return true
}

// state is the breaker's state for a hold decision: whether it is open and its epoch.
func (b *breaker) state() (open bool, epoch uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open, b.epoch
}

// transition is a change of a breaker for the relay to act on.
type transition int

const (
	unchanged transition = iota
	opened
	closed
)

// done records a publish's outcome and reports whether it opened or closed the breaker (and, when it closed,
// for how long it was open).
func (b *breaker) done(err error, now time.Time) (transition, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == nil:
		b.fails = 0
		if b.open {
			b.open = false
			return closed, now.Sub(b.since)
		}
	case errors.Is(err, ErrUnavailable):
		b.fails++
		if !b.open && b.fails >= breakerThreshold {
			b.open, b.since, b.firstErr, b.nextProbe = true, now, err, now
			b.epoch++
			return opened, 0
		}
	default:
		b.fails = 0 // the broker answered
	}
	return unchanged, 0
}

// probeDue reports whether the probe loop should make one held row due so that a probe can happen: the
// breaker is open, no probe started within the last interval, and the loop did not already do it within the
// last interval.
func (b *breaker) probeDue(now time.Time, every time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open || now.Before(b.nextProbe) || now.Sub(b.unheld) < every {
		return false
	}
	b.unheld = now
	return true
}

// breakerOpened logs and reports an opening.
func (r *Relay) breakerOpened(ctx context.Context, b *breaker) {
	b.mu.Lock()
	err := b.firstErr
	b.mu.Unlock()
	r.log.WarnContext(ctx, "relay: topic unavailable; holding its rows (no attempts counted) and probing",
		"topic", b.topic, "probe_interval", r.cfg.ProbeInterval, "error", err)
	if r.cfg.OnBreaker != nil {
		r.cfg.OnBreaker(BreakerChange{Topic: b.topic, Open: true, Err: err})
	}
}

// breakerClosed logs and reports a closing; the caller makes the topic's held rows due.
func (r *Relay) breakerClosed(ctx context.Context, topic string, outage time.Duration) {
	r.log.InfoContext(ctx, "relay: topic available again; its held rows are due", "topic", topic, "outage", outage)
	if r.cfg.OnBreaker != nil {
		r.cfg.OnBreaker(BreakerChange{Topic: topic, Outage: outage})
	}
}

// probeLoop runs beside Run's workers: every ProbeInterval, for each open breaker whose probe is due, it makes
// the topic's lowest held row due and wakes the workers, so that one claims a row of the topic and publishes
// it as the probe. Rows enqueued during the outage, or made due by another relay, serve as probes too.
func (r *Relay) probeLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, b := range r.breakers.opened() {
			if !b.probeDue(time.Now(), r.cfg.ProbeInterval) {
				continue
			}
			if _, err := r.s.OutboxResume(ctx, r.db, b.topic, 1); err != nil && ctx.Err() == nil {
				r.warn(ctx, "resume", "relay: making a held row due for a probe failed", "topic", b.topic, "error", err)
			}
			// Wake the workers even when no row was held: another relay whose probe succeeded may have made
			// them all due, and a worker idle for MaxPollInterval would probe only then.
			r.wake.broadcast()
		}
	}
}
