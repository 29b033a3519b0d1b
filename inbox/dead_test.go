package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// Invariant 7: a message that keeps failing is parked after MaxAttempts with its payload, headers and last
// error; later deliveries are acknowledged without running the handler; Replay runs it exactly once.
func TestPoisonParksAndReplaysOnce(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		poisonScenario(t, db, "poison")
	}, testdb.MaxOpenConns(20))
}

func poisonScenario(t *testing.T, db *testdb.DB, c string) {
	ctx := context.Background()
	const maxAttempts = 3
	ib := newInbox(t, db, c, inbox.Config{MaxAttempts: maxAttempts})
	d := inbox.Delivery{Key: "order-9/charge", Payload: []byte(`{"card":"declined"}`),
		Headers: map[string]string{"trace": "abc", "é": "ü"}, Topic: "payments", MessageID: "0A0B0C"}
	var runs atomic.Int32
	failing := func(ctx context.Context, tx *sqlx.Tx) error {
		runs.Add(1)
		if err := effectHandler(db, c, d.Key)(ctx, tx); err != nil {
			return err
		}
		return fmt.Errorf("card declined (attempt %d) \x00 with a NUL and \xff bad UTF-8", runs.Load())
	}
	for i := 1; i < maxAttempts; i++ {
		d.Attempt = i - 1
		res, err := ib.Process(ctx, d, failing)
		if res != inbox.Failed || err == nil {
			t.Fatalf("delivery %d: %v, %v; want Failed with the handler's error", i, res, err)
		}
	}
	d.Attempt = maxAttempts - 1
	if res, err := ib.Process(ctx, d, failing); res != inbox.Parked || err != nil {
		t.Fatalf("delivery %d: %v, %v; want Parked, nil", maxAttempts, res, err)
	}
	if res, err := ib.Process(ctx, d, failing); res != inbox.Parked || err != nil {
		t.Fatalf("delivery after parking: %v, %v; want Parked, nil", res, err)
	}
	if got := runs.Load(); got != maxAttempts {
		t.Fatalf("handler ran %d times, want %d (not after parking)", got, maxAttempts)
	}
	if n := effects(t, db, c, d.Key); n != 0 {
		t.Fatalf("failed attempts left %d effects", n)
	}

	dead, err := ib.ListDead(ctx, inbox.DeadFilter{})
	if err != nil || len(dead) != 1 {
		t.Fatalf("ListDead: %v, %v; want one dead letter", dead, err)
	}
	dl := dead[0]
	if dl.Delivery.Key != d.Key || string(dl.Delivery.Payload) != string(d.Payload) || dl.Attempts != maxAttempts ||
		dl.Delivery.Headers["trace"] != "abc" || dl.Delivery.Headers["é"] != "ü" || dl.Delivery.Topic != "payments" ||
		dl.Delivery.MessageID != "0A0B0C" || dl.ParkedAt.IsZero() {
		t.Fatalf("dead letter %+v does not match the delivery %+v", dl, d)
	}
	if want := fmt.Sprintf("card declined (attempt %d)", maxAttempts); !contains(dl.LastError, want) {
		t.Fatalf("LastError %q, want it to contain %q", dl.LastError, want)
	}
	if other, err := ib.ListDead(ctx, inbox.DeadFilter{Key: "another"}); err != nil || len(other) != 0 {
		t.Fatalf("ListDead for another key: %v, %v; want none", other, err)
	}
	if page, err := ib.ListDead(ctx, inbox.DeadFilter{AfterID: dl.ID}); err != nil || len(page) != 0 {
		t.Fatalf("ListDead after the last id: %v, %v; want none", page, err)
	}

	// Concurrent replays of one dead letter: exactly one runs the handler.
	var replayRuns atomic.Int32
	replay := func(ctx context.Context, tx *sqlx.Tx, got inbox.Delivery) error {
		replayRuns.Add(1)
		if string(got.Payload) != string(d.Payload) || got.Key != d.Key || got.Headers["trace"] != "abc" {
			return fmt.Errorf("replayed delivery %+v, want %+v", got, d)
		}
		return effectHandler(db, c, got.Key)(ctx, tx)
	}
	var wg sync.WaitGroup
	results := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			res, err := ib.Replay(ctx, dl.ID, replay)
			if err == nil && res != inbox.Processed {
				err = fmt.Errorf("replay result %v, want processed", res)
			}
			results <- err
		})
	}
	wg.Wait()
	close(results)
	ok, gone := 0, 0
	for err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, inbox.ErrDeadNotFound):
			gone++
		default:
			t.Errorf("replay: %v", err)
		}
	}
	if ok != 1 || gone != 3 || replayRuns.Load() != 1 {
		t.Fatalf("4 concurrent replays: %d succeeded, %d not found, handler ran %d times; want 1, 3, 1", ok, gone, replayRuns.Load())
	}
	if _, err := ib.Replay(ctx, dl.ID, replay); !errors.Is(err, inbox.ErrDeadNotFound) {
		t.Fatalf("second replay: %v, want ErrDeadNotFound", err)
	}
	if n := effects(t, db, c, d.Key); n != 1 {
		t.Fatalf("effects after replay = %d, want 1", n)
	}
	// The key is now an ordinary processed key.
	if res, err := ib.Process(ctx, d, failing); res != inbox.Duplicate || err != nil {
		t.Fatalf("delivery after replay: %v, %v; want Duplicate", res, err)
	}
	if dead, _ := ib.ListDead(ctx, inbox.DeadFilter{}); len(dead) != 0 {
		t.Fatalf("dead letters after replay: %+v", dead)
	}
}

// A replay whose handler fails leaves the dead letter in place; DropDead discards one, after which deliveries
// are duplicates; panics count as failures and park too.
func TestReplayFailureAndDropDead(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		ib := newInbox(t, db, "c", inbox.Config{MaxAttempts: 1})
		panics := func(context.Context, *sqlx.Tx) error { panic("always") }
		for _, k := range []string{"a", "b"} {
			if res, err := ib.Process(ctx, inbox.Delivery{Key: k, Payload: []byte(k)}, panics); res != inbox.Parked || err != nil {
				t.Fatalf("key %s with MaxAttempts 1: %v, %v; want Parked", k, res, err)
			}
		}
		dead, err := ib.ListDead(ctx, inbox.DeadFilter{Limit: 1})
		if err != nil || len(dead) != 1 || dead[0].Delivery.Key != "a" || !contains(dead[0].LastError, "always") {
			t.Fatalf("first page: %+v, %v", dead, err)
		}
		next, err := ib.ListDead(ctx, inbox.DeadFilter{Limit: 1, AfterID: dead[0].ID})
		if err != nil || len(next) != 1 || next[0].Delivery.Key != "b" {
			t.Fatalf("second page: %+v, %v", next, err)
		}

		boom := errors.New("still broken")
		if _, err := ib.Replay(ctx, dead[0].ID, func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
			if err := effectHandler(db, "c", d.Key)(ctx, tx); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("failing replay: %v, want boom", err)
		}
		if n := effects(t, db, "c", "a"); n != 0 {
			t.Fatalf("failed replay left %d effects", n)
		}
		if again, _ := ib.ListDead(ctx, inbox.DeadFilter{Key: "a"}); len(again) != 1 {
			t.Fatalf("dead letter gone after a failed replay: %+v", again)
		}

		if err := ib.DropDead(ctx, next[0].ID); err != nil {
			t.Fatalf("DropDead: %v", err)
		}
		if err := ib.DropDead(ctx, next[0].ID); !errors.Is(err, inbox.ErrDeadNotFound) {
			t.Fatalf("second DropDead: %v, want ErrDeadNotFound", err)
		}
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "b", Payload: []byte("b")}, panics); res != inbox.Duplicate || err != nil {
			t.Fatalf("delivery of a dropped message: %v, %v; want Duplicate", res, err)
		}
		// Another consumer cannot see or touch this consumer's dead letters.
		other := newInbox(t, db, "other", inbox.Config{})
		if l, _ := other.ListDead(ctx, inbox.DeadFilter{}); len(l) != 0 {
			t.Fatalf("other consumer lists %d dead letters", len(l))
		}
		if err := other.DropDead(ctx, dead[0].ID); !errors.Is(err, inbox.ErrDeadNotFound) {
			t.Fatalf("other consumer dropping a dead letter: %v, want ErrDeadNotFound", err)
		}
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
