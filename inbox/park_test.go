package inbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// Park moves a delivery to the dead-letter table at once, with the cause as its last error; later deliveries
// return Parked without running the handler, Replay runs it once; a key already processed is not parked.
func TestParkAtOnce(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		ib := newInbox(t, db, "park", inbox.Config{MaxAttempts: 5})
		d := inbox.Delivery{Key: "order-7/ship", Payload: []byte("not json"), Headers: map[string]string{"h": "v"},
			Topic: "orders", MessageID: "MSG7"}
		res, err := ib.Park(ctx, d, errors.New("payload does not decode"))
		if res != inbox.Parked || err != nil {
			t.Fatalf("Park = %v, %v; want Parked", res, err)
		}
		dead, err := ib.ListDead(ctx, inbox.DeadFilter{Key: d.Key})
		if err != nil || len(dead) != 1 {
			t.Fatalf("ListDead = %v, %v; want one dead letter", dead, err)
		}
		if dl := dead[0]; dl.Attempts != 1 || dl.LastError != "payload does not decode" || string(dl.Delivery.Payload) != "not json" ||
			dl.Delivery.Headers["h"] != "v" || dl.Delivery.MessageID != "MSG7" {
			t.Fatalf("dead letter %+v", dl)
		}
		ran := false
		never := func(context.Context, *sqlx.Tx) error { ran = true; return nil }
		if res, err := ib.Process(ctx, d, never); res != inbox.Parked || err != nil || ran {
			t.Fatalf("delivery after Park: %v, %v, handler ran %v; want Parked without the handler", res, err, ran)
		}
		if res, err := ib.Park(ctx, d, errors.New("again")); res != inbox.Duplicate || err != nil {
			t.Fatalf("second Park = %v, %v; want Duplicate (already recorded)", res, err)
		}
		if res, err := ib.Replay(ctx, dead[0].ID, func(ctx context.Context, tx *sqlx.Tx, got inbox.Delivery) error {
			return effectHandler(db, "park", got.Key)(ctx, tx)
		}); res != inbox.Processed || err != nil {
			t.Fatalf("Replay = %v, %v; want Processed", res, err)
		}
		if n := effects(t, db, "park", d.Key); n != 1 {
			t.Fatalf("%d effects after replay, want 1", n)
		}

		// A processed key is not parked, and nothing is written.
		done := inbox.Delivery{Key: "order-8/ship", Payload: []byte("{}")}
		if res, err := ib.Process(ctx, done, effectHandler(db, "park", done.Key)); res != inbox.Processed || err != nil {
			t.Fatalf("Process = %v, %v", res, err)
		}
		if res, err := ib.Park(ctx, done, errors.New("late")); res != inbox.Duplicate || err != nil {
			t.Fatalf("Park of a processed key = %v, %v; want Duplicate", res, err)
		}
		if dead, _ := ib.ListDead(ctx, inbox.DeadFilter{Key: done.Key}); len(dead) != 0 {
			t.Fatalf("a processed key was parked: %+v", dead)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts"); n != 0 {
			t.Fatalf("%d attempt counters left behind", n)
		}

		// Bad input is refused before any SQL.
		if _, err := ib.Park(ctx, inbox.Delivery{Key: ""}, errors.New("x")); !errors.Is(err, inbox.ErrInvalidDelivery) {
			t.Fatalf("Park with an empty key: %v, want ErrInvalidDelivery", err)
		}
		if _, err := ib.Park(ctx, d, nil); err == nil || !strings.Contains(err.Error(), "cause") {
			t.Fatalf("Park without a cause: %v", err)
		}
	})
}
