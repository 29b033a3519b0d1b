package relay

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// errLeaseDeadline and errPublishTimeout end a batch's publishing (the cause of its context).
var (
	errLeaseDeadline  = errors.New("relay: the batch's lease is about to end")
	errPublishTimeout = errors.New("relay: the batch's PublishTimeout passed")
)

// newToken returns a random claim token (positive, so that it can never be an outage hold, -1).
func newToken() int64 { return rand.Int64N(math.MaxInt64) + 1 }

// batchLease is a batch's side of its lease: the context its Publish calls run under, cancelled at the local
// deadline, and the goroutine that renews the lease on the worker's connection while they run.
//
// The deadline is min(publish start + PublishTimeout, claim start + Lease - LeaseMargin), where claim start was
// read from the relay's monotonic clock before the claim was sent. The database computed the lease end as its
// now + Lease after it received the claim, so, while both clocks advance at the same rate to within
// LeaseMargin/Lease, the batch stops publishing at least LeaseMargin before any other claim can take its rows.
// A renewal read the clock before it was sent too, and it moves the deadline only when its answer arrives
// before the current deadline (then it committed before the lease it extends ended): a renewal that fails or
// comes late changes nothing, so a relay that lost its database stops by its last confirmed lease end.
type batchLease struct {
	w     *worker
	token int64
	refs  []store.OutboxRowRef

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	timer    *time.Timer
	deadline time.Time // the relay's clock
	hard     time.Time // publish start + PublishTimeout
	fired    bool

	stopc chan struct{}
	done  chan struct{}
}

func (w *worker) startLease(parent context.Context, claimStart time.Time, token int64, rows []store.OutboxRow) *batchLease {
	r := w.r
	l := &batchLease{w: w, token: token, stopc: make(chan struct{}), done: make(chan struct{})}
	l.refs = make([]store.OutboxRowRef, len(rows))
	for i := range rows {
		l.refs[i] = store.OutboxRowRef{ID: rows[i].ID, Partition: rows[i].Partition}
	}
	l.ctx, l.cancel = context.WithCancelCause(parent)
	l.hard = time.Now().Add(r.cfg.PublishTimeout)
	l.deadline = l.leaseDeadline(claimStart)
	l.timer = time.AfterFunc(time.Until(l.deadline), l.expire)
	if l.deadline.Before(l.hard) {
		go l.renew(claimStart)
	} else {
		close(l.done) // PublishTimeout ends the batch before its lease: nothing to renew
	}
	return l
}

func (l *batchLease) leaseDeadline(from time.Time) time.Time {
	lease := l.w.r.cfg.Lease
	d := from.Add(lease - LeaseMargin(lease))
	if l.hard.Before(d) {
		return l.hard
	}
	return d
}

func (l *batchLease) expire() {
	l.mu.Lock()
	l.fired = true
	hard := !l.deadline.Before(l.hard)
	l.mu.Unlock()
	if hard {
		l.cancel(errPublishTimeout)
	} else {
		l.cancel(errLeaseDeadline)
	}
}

// extend moves the deadline for a renewal sent at from; it reports false when the renewal came too late.
func (l *batchLease) extend(from time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fired || !time.Now().Before(l.deadline) {
		return false
	}
	nd := l.leaseDeadline(from)
	if !nd.After(l.deadline) {
		return true
	}
	if !l.timer.Stop() {
		return false // fired meanwhile
	}
	l.deadline = nd
	l.timer.Reset(time.Until(nd))
	return true
}

// renew renews the lease every Lease/3 until the batch stops publishing. It never cancels a renewal in flight:
// go-sql-driver/mysql closes the connection of a cancelled statement, and the batch still needs it.
func (l *batchLease) renew(last time.Time) {
	defer close(l.done)
	r := l.w.r
	for {
		t := time.NewTimer(time.Until(last.Add(r.cfg.Lease / 3)))
		select {
		case <-l.stopc:
			t.Stop()
			return
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		from := time.Now()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), r.cfg.Lease)
		n, err := r.s.OutboxRenew(rctx, l.w.conn, l.token, l.refs, r.cfg.Lease)
		cancel()
		switch {
		case err != nil:
			r.log.DebugContext(l.ctx, "relay: lease renewal failed; the batch stops by its lease end", "worker", l.w.id,
				"error", err)
			return
		case n != len(l.refs):
			r.log.DebugContext(l.ctx, "relay: lease renewal found rows no longer leased; the batch stops by its lease end",
				"worker", l.w.id, "renewed", n, "rows", len(l.refs))
			return
		case !l.extend(from):
			return
		}
		last = from
	}
}

// stop ends the renewals and waits for one in flight; after it the worker's connection is free again.
func (l *batchLease) stop() {
	close(l.stopc)
	<-l.done
	l.timer.Stop()
	l.cancel(nil)
}
