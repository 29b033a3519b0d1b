package relay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// A publish that fails leaves its row in the outbox, with the attempt and the error recorded, while the rows
// beside it that the publisher confirmed are gone. A relay that dropped failed rows as if published would lose
// them; this says so in a second, not after a stress test's timeout.
func TestFailedPublishLeavesItsRow(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		enqueueMany(t, db, newOutbox(t, db), 3, func(i int) outbox.Message {
			return outbox.Message{Topic: "t", Key: []string{"ok-1", "bad", "ok-2"}[i]}
		})
		pub := relay.PublisherFunc(func(_ context.Context, r outbox.Record) error {
			if r.Key == "bad" {
				return errors.New("broker said no")
			}
			return nil
		})
		r := newRelay(t, db, pub, func(c *relay.Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Minute })
		n, err := r.Drain(context.Background())
		if err != nil || n != 2 {
			t.Fatalf("Drain = %d, %v; want the 2 good rows", n, err)
		}
		var rows []struct {
			Key       string `db:"msg_key"`
			Attempts  int    `db:"attempts"`
			LastError string `db:"last_error"`
		}
		if err := db.SelectContext(context.Background(), &rows, "SELECT msg_key, attempts, last_error FROM txbox_outbox"); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Key != "bad" || rows[0].Attempts != 1 || rows[0].LastError == "" {
			t.Fatalf("outbox after the drain: %+v; want only the failed row, with 1 attempt and its error", rows)
		}
		if c := count(t, db, "txbox_outbox_dead"); c != 0 {
			t.Fatalf("%d dead letters after one failure (MaxAttempts is %d)", c, relay.DefaultMaxAttempts)
		}
	})
}
