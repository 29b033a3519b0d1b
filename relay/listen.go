package relay

import (
	"context"
	"errors"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// listen keeps one connection LISTENing on the outbox's channel (PostgreSQL through pgx) and wakes the workers
// on every notification. It returns when ctx ends or when the store says the database or driver cannot deliver
// notifications (MySQL, lib/pq): the workers then poll adaptively.
func (r *Relay) listen(ctx context.Context) {
	for ctx.Err() == nil {
		l, err := r.s.OutboxListen(ctx, r.db.DB)
		if errors.Is(err, store.ErrNotifyUnsupported) {
			r.log.DebugContext(ctx, "relay: no notifications, polling", "reason", err)
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				r.log.WarnContext(ctx, "relay: LISTEN failed", "error", err)
			}
			sleepCtx(ctx, time.Second)
			continue
		}
		r.listening.Add(1)
		r.wake.broadcast() // rows committed before LISTEN took effect
		for {
			if err = l.Wait(ctx); err != nil {
				break
			}
			r.wake.broadcast()
		}
		r.listening.Add(-1)
		l.Close() // it still LISTENs; never hand it back to the pool
		if ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay: listener connection failed, polling until it is back", "error", err)
			sleepCtx(ctx, time.Second)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
