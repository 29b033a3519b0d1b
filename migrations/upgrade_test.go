package migrations_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/migrations"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

// firstWave is the last schema version the code before the first release shipped (migrations 00001–00003):
// the version an installation upgrades from to v0.1.0.
const firstWave = 3

// An installation at the first wave's schema, with rows in every state the code of that time left behind, is
// upgraded by Up to the current schema and then served by today's code: pending outbox rows (keyed and not) are
// published, recorded inbox keys are still duplicates, a parked key is still parked, dead letters can be
// requeued, and Check is satisfied.
func TestUpgradeFromTheFirstWave(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := migrations.DownTo(ctx, db.DB.DB, db.Dialect, firstWave); err != nil {
			t.Fatalf("DownTo(%d): %v", firstWave, err)
		}
		if err := migrations.Check(ctx, db.DB.DB, db.Dialect); err == nil {
			t.Fatalf("Check passes at version %d; the test would not show an upgrade", firstWave)
		}

		// What the first wave's code wrote, column for column.
		now := time.Now().UTC().Truncate(time.Microsecond)
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.ExecContext(ctx, db.Rebind(q), args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		keyedPart := outbox.PartitionOf("order-7")
		exec("INSERT INTO txbox_outbox (part, topic, msg_key, tag, sharding_key, payload, headers, attempts, available_at, created_at)"+
			" VALUES (?, ?, ?, '', ?, ?, NULL, 0, ?, ?)", keyedPart, "orders", "order-7/created", "order-7", []byte("keyed"), now, now)
		exec("INSERT INTO txbox_outbox (part, topic, msg_key, payload, attempts, available_at, created_at, last_error)"+
			" VALUES (-1, ?, ?, ?, 2, ?, ?, ?)", "orders", "order-8/created", []byte("unkeyed, retried twice"), now, now.Add(-time.Minute), "broker down")
		exec("INSERT INTO txbox_outbox_dead (id, part, topic, msg_key, tag, sharding_key, payload, headers, attempts, created_at, dead_at, last_error)"+
			" VALUES (1000, -1, ?, ?, '', '', ?, NULL, 10, ?, ?, ?)", "orders", "order-9/created", []byte("dead"), now, now, "refused")
		done := sha256.Sum256([]byte("paid"))
		exec("INSERT INTO txbox_inbox (consumer, msg_key, fingerprint, received_at, parked) VALUES (?, ?, ?, ?, ?)",
			"billing", "order-7/payment", done[:], now, false)
		poison := sha256.Sum256([]byte("poison"))
		exec("INSERT INTO txbox_inbox (consumer, msg_key, fingerprint, received_at, parked) VALUES (?, ?, ?, ?, ?)",
			"billing", "order-8/payment", poison[:], now, true)
		exec("INSERT INTO txbox_inbox_dead (consumer, msg_key, fingerprint, payload, topic, message_id, attempts, last_error, parked_at)"+
			" VALUES (?, ?, ?, ?, 'payments', 'm-1', 10, 'handler failed', ?)", "billing", "order-8/payment", poison[:], []byte("poison"), now)

		if err := migrations.Up(ctx, db.DB.DB, db.Dialect); err != nil {
			t.Fatalf("Up from version %d: %v", firstWave, err)
		}
		if err := migrations.Check(ctx, db.DB.DB, db.Dialect); err != nil {
			t.Fatalf("Check after the upgrade: %v", err)
		}

		pub := memory.New()
		r, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Publisher: pub})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := r.Drain(ctx); err != nil || n != 2 {
			t.Fatalf("Drain after the upgrade = %d, %v; want the 2 rows the first wave left pending", n, err)
		}
		got := map[string]string{}
		for _, rec := range pub.Records() {
			got[rec.Key] = string(rec.Payload)
		}
		if got["order-7/created"] != "keyed" || got["order-8/created"] != "unkeyed, retried twice" {
			t.Errorf("published after the upgrade: %q", got)
		}

		ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: "billing"})
		if err != nil {
			t.Fatal(err)
		}
		ran := 0
		handler := func(context.Context, *sqlx.Tx) error { ran++; return nil }
		for _, c := range []struct {
			key, payload string
			want         inbox.Result
		}{
			{"order-7/payment", "paid", inbox.Duplicate},
			{"order-8/payment", "poison", inbox.Parked},
			{"order-10/payment", "new", inbox.Processed},
		} {
			res, err := ib.Process(ctx, inbox.Delivery{Key: c.key, Payload: []byte(c.payload)}, handler)
			if err != nil || res != c.want {
				t.Errorf("Process(%s) after the upgrade = %v, %v; want %v", c.key, res, err, c.want)
			}
		}
		if ran != 1 {
			t.Errorf("handler ran %d times, want once (only for the new key)", ran)
		}

		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := ob.Requeue(ctx, db.DB, 1000); err != nil || n != 1 {
			t.Fatalf("Requeue of the first wave's dead letter = %d, %v", n, err)
		}
		if n, err := r.Drain(ctx); err != nil || n != 1 {
			t.Fatalf("Drain of the requeued dead letter = %d, %v; want 1", n, err)
		}
	})
}
