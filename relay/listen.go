package relay

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
)

// listen keeps one connection LISTENing on the outbox's channel (PostgreSQL through pgx) and wakes the workers
// on every notification. It returns when ctx ends or when the driver cannot receive notifications (lib/pq):
// the workers then poll adaptively, as on MySQL.
func (r *Relay) listen(ctx context.Context) {
	ch := outbox.NotifyChannel(r.cfg.Table)
	for ctx.Err() == nil {
		conn, err := r.db.Conn(ctx)
		if err != nil {
			r.log.WarnContext(ctx, "relay: listener cannot get a connection", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		l, err := r.d.OutboxListen(ctx, conn, &dialect.OutboxListenParams{Channel: ch})
		if errors.Is(err, dialect.ErrNotifyUnsupported) {
			_ = conn.Close()
			r.log.DebugContext(ctx, "relay: no notifications, polling", "reason", err)
			return
		}
		if err != nil {
			discardConn(conn)
			r.log.WarnContext(ctx, "relay: LISTEN failed", "err", err)
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
		discardConn(conn) // it still LISTENs; never hand it back to the pool
		if ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay: listener connection failed, polling until it is back", "err", err)
			sleepCtx(ctx, time.Second)
		}
	}
}

// discardConn closes conn's underlying connection instead of returning it to the pool (it may hold session
// state: LISTEN, advisory locks).
type rawer interface {
	Raw(func(any) error) error
	Close() error
}

func discardConn(c rawer) {
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	_ = c.Close()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
