package inbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// Failures before the handler runs are not the message's: they never count toward MaxAttempts. A redelivered
// key with another payload keeps failing with ErrFingerprintMismatch (it is never parked and never
// acknowledged as a Duplicate by a count that reached MaxAttempts), and a database that cannot record keys
// (here: a missing table) does not park the message either: once the database is back, the delivery is
// processed normally.
func TestFailuresBeforeTheHandlerAreNotCounted(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		ib := newInbox(t, db, "c", inbox.Config{MaxAttempts: 2})
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "k", Payload: []byte("A")}, effectHandler(db, "c", "k")); err != nil || res != inbox.Processed {
			t.Fatalf("first delivery: %v, %v", res, err)
		}
		for i := range 4 {
			res, err := ib.Process(ctx, inbox.Delivery{Key: "k", Payload: []byte("B")}, effectHandler(db, "c", "k"))
			if !errors.Is(err, inbox.ErrFingerprintMismatch) || res != inbox.Failed {
				t.Fatalf("mismatched delivery %d: %v, %v; want Failed with ErrFingerprintMismatch every time", i+1, res, err)
			}
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts"); n != 0 {
			t.Fatalf("%d attempts rows after fingerprint mismatches, want none counted", n)
		}

		rename := "ALTER TABLE " + db.InboxKeys + " RENAME TO txbox_inbox_away"
		back := "ALTER TABLE txbox_inbox_away RENAME TO " + db.InboxKeys
		if db.Dialect == dialect.MySQL {
			rename, back = "RENAME TABLE "+db.InboxKeys+" TO txbox_inbox_away", "RENAME TABLE txbox_inbox_away TO "+db.InboxKeys
		}
		if _, err := db.ExecContext(ctx, rename); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			res, err := ib.Process(ctx, inbox.Delivery{Key: "down", Payload: []byte("x")}, effectHandler(db, "c", "down"))
			if !errors.Is(err, dialect.ErrSchemaMissing) || res != inbox.Failed {
				t.Fatalf("delivery %d without the inbox table: %v, %v; want Failed with ErrSchemaMissing", i+1, res, err)
			}
		}
		if _, err := db.ExecContext(ctx, back); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts"); n != 0 {
			t.Fatalf("%d attempts rows after database failures, want none counted", n)
		}
		res, err := ib.Process(ctx, inbox.Delivery{Key: "down", Payload: []byte("x")}, effectHandler(db, "c", "down"))
		if err != nil || res != inbox.Processed || effects(t, db, "c", "down") != 1 {
			t.Fatalf("delivery once the table is back: %v, %v, %d effects; want Processed once", res, err, effects(t, db, "c", "down"))
		}
	})
}
