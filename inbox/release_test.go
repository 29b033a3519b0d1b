package inbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// Release frees a parked key in the caller's transaction: rolled back it changes nothing, committed the dead
// letter is gone and the next delivery runs the handler once.
func TestReleaseRunsTheNextDelivery(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		ib := newInbox(t, db, "c", inbox.Config{MaxAttempts: 1})
		fails := func(context.Context, *sqlx.Tx) error { return errors.New("poison") }
		d := inbox.Delivery{Key: "k/1", Payload: []byte("p"), Topic: "orders", Headers: map[string]string{"h": "v"}}
		if res, err := ib.Process(ctx, d, fails); res != inbox.Parked || err != nil {
			t.Fatalf("first delivery: %v, %v; want Parked", res, err)
		}
		dead, err := ib.ListDead(ctx, inbox.DeadFilter{})
		if err != nil || len(dead) != 1 {
			t.Fatalf("ListDead: %+v, %v", dead, err)
		}
		id := dead[0].ID

		// Rolled back: still parked.
		tx := db.MustBeginTx(ctx, nil)
		dl, err := ib.Release(ctx, tx, id)
		if err != nil || dl.Delivery.Key != "k/1" || string(dl.Delivery.Payload) != "p" || dl.Delivery.Topic != "orders" ||
			dl.Delivery.Headers["h"] != "v" {
			t.Fatalf("Release: %+v, %v", dl, err)
		}
		_ = tx.Rollback()
		if res, err := ib.Process(ctx, d, effectHandler(db, "c", d.Key)); res != inbox.Parked || err != nil {
			t.Fatalf("delivery after a rolled-back release: %v, %v; want Parked", res, err)
		}

		// Committed: the dead letter and the parked key are gone; the next delivery runs, once.
		tx = db.MustBeginTx(ctx, nil)
		if _, err := ib.Release(ctx, tx, id); err != nil {
			t.Fatalf("Release: %v", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_dead WHERE consumer = ?", "c"); n != 0 {
			t.Fatalf("%d dead letters after release", n)
		}
		if _, err := ib.Release(ctx, db, id); !errors.Is(err, inbox.ErrDeadNotFound) {
			t.Fatalf("second Release: %v, want ErrDeadNotFound", err)
		}
		for n, want := range []inbox.Result{inbox.Processed, inbox.Duplicate} {
			if res, err := ib.Process(ctx, d, effectHandler(db, "c", d.Key)); res != want || err != nil {
				t.Fatalf("delivery %d after release: %v, %v; want %v", n+1, res, err, want)
			}
		}
		if n := effects(t, db, "c", d.Key); n != 1 {
			t.Fatalf("%d effects, want 1", n)
		}
	})
}
