package inbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// A handler that outlives HandlerTimeout is rolled back with a clear error, whether it honours its ctx or
// ignores it, and the timeout counts as a failed attempt.
//
// The deadline must leave the claim time to record the key first (a claim that outlives it is a wait, not a
// handler failure, and is not counted): it is set from a measured delivery, at least 300ms, so a slow run under
// -race on a loaded machine stretches the test instead of failing it. The redelivery runs on an inbox with a
// generous deadline.
func TestHandlerTimeout(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		patient := newInbox(t, db, "c", inbox.Config{HandlerTimeout: time.Minute, MaxAttempts: 3})
		start := time.Now()
		if res, err := patient.Process(ctx, inbox.Delivery{Key: "warm-up"}, effectHandler(db, "c", "warm-up")); err != nil || res != inbox.Processed {
			t.Fatalf("warm-up delivery: %v, %v", res, err)
		}
		timeout := max(300*time.Millisecond, 20*time.Since(start))
		ib := newInbox(t, db, "c", inbox.Config{HandlerTimeout: timeout, MaxAttempts: 3})
		d := inbox.Delivery{Key: "slow", Payload: []byte("p")}
		honours := func(ctx context.Context, tx *sqlx.Tx) error {
			if err := effectHandler(db, "c", d.Key)(ctx, tx); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		}
		ignores := func(ctx context.Context, tx *sqlx.Tx) error {
			if err := effectHandler(db, "c", d.Key)(ctx, tx); err != nil {
				return err
			}
			<-ctx.Done()
			return nil // pretends to have succeeded after its deadline
		}
		for name, h := range map[string]inbox.Handler{"honours ctx": honours, "ignores ctx": ignores} {
			res, err := ib.Process(ctx, d, h)
			if res != inbox.Failed || !errors.Is(err, inbox.ErrHandlerTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("handler that %s: %v, %v; want Failed matching ErrHandlerTimeout", name, res, err)
			}
			if n := effects(t, db, "c", d.Key); n != 0 {
				t.Fatalf("handler that %s: %d effects committed after the timeout", name, n)
			}
		}
		if n := countRows(t, db, "SELECT attempts FROM txbox_inbox_attempts WHERE consumer = ? AND msg_key = ?", "c", d.Key); n != 2 {
			t.Fatalf("attempts after two timeouts = %d, want 2", n)
		}
		if res, err := patient.Process(ctx, d, effectHandler(db, "c", d.Key)); res != inbox.Processed || err != nil {
			t.Fatalf("redelivery: %v, %v; want processed", res, err)
		}
		if n := effects(t, db, "c", d.Key); n != 1 {
			t.Fatalf("effects = %d, want 1", n)
		}
	})
}

// A caller that cancels (shutdown) gets its ctx error; that is not counted against the message.
func TestCallerCancelIsNotCounted(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ib := newInbox(t, db, "c", inbox.Config{MaxAttempts: 1})
		ctx, cancel := context.WithCancel(context.Background())
		res, err := ib.Process(ctx, inbox.Delivery{Key: "k"}, func(hctx context.Context, tx *sqlx.Tx) error {
			cancel()
			<-hctx.Done()
			return hctx.Err()
		})
		if res != inbox.Failed || !errors.Is(err, context.Canceled) || errors.Is(err, inbox.ErrHandlerTimeout) {
			t.Fatalf("cancelled: %v, %v; want Failed matching context.Canceled", res, err)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts"); n != 0 {
			t.Fatalf("a cancelled delivery was counted as a failure (%d rows); with MaxAttempts 1 it would be parked", n)
		}
		if n := countKeys(t, db, "1 = 1"); n != 0 {
			t.Fatalf("a cancelled delivery recorded its key")
		}
	})
}

// A handler stuck outside the database (ignoring its ctx) does not keep the key locked past HandlerTimeout:
// its transaction is rolled back at the deadline, so a redelivery runs while the stuck handler still hangs.
func TestStuckHandlerReleasesKeyAtDeadline(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		impatient := newInbox(t, db, "c", inbox.Config{HandlerTimeout: time.Second})
		patient := newInbox(t, db, "c", inbox.Config{HandlerTimeout: 30 * time.Second})
		d := inbox.Delivery{Key: "stuck", Payload: []byte("p")}
		inHandler, release := make(chan struct{}), make(chan struct{})
		firstErr := make(chan error, 1)
		go func() {
			_, err := impatient.Process(ctx, d, func(ctx context.Context, tx *sqlx.Tx) error {
				close(inHandler) // the key is recorded (uncommitted) and locked
				<-release        // stuck, deaf to ctx
				return effectHandler(db, "c", d.Key)(ctx, tx)
			})
			firstErr <- err
		}()
		select {
		case <-inHandler:
		case err := <-firstErr:
			t.Fatalf("first delivery ended before its handler ran: %v", err)
		}
		res, err := patient.Process(ctx, d, effectHandler(db, "c", d.Key))
		close(release)
		if res != inbox.Processed || err != nil {
			t.Fatalf("redelivery while the first handler is stuck: %v, %v; want processed", res, err)
		}
		if err := <-firstErr; !errors.Is(err, inbox.ErrHandlerTimeout) {
			t.Fatalf("stuck delivery: %v; want ErrHandlerTimeout", err)
		}
		if n := effects(t, db, "c", d.Key); n != 1 {
			t.Fatalf("effects = %d, want 1", n)
		}
	})
}
