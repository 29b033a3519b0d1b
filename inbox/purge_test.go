package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// recordKeys processes n keys prefix-0..prefix-(n-1) through ib, with a handler that writes nothing.
func recordKeys(t *testing.T, ib *inbox.Inbox, prefix string, n int) {
	t.Helper()
	for i := range n {
		d := inbox.Delivery{Key: fmt.Sprintf("%s-%d", prefix, i), Payload: []byte("p")}
		if res, err := ib.Process(context.Background(), d, nop); err != nil || res != inbox.Processed {
			t.Fatalf("record %s: %v, %v", d.Key, res, err)
		}
	}
}

// Invariant 8: Purge deletes only keys older than Retention, of its own consumer, in batches of
// PurgeBatchSize, and Process runs normally while a batch's transaction is open.
func TestPurgeRemovesOnlyExpiredKeysInBatches(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		const c, old, fresh, batch = "purger", 1100, 40, 400
		cfg := inbox.Config{PurgeBatchSize: batch}
		ib := newInbox(t, db, c, cfg)
		// Keys recorded eight days ago (Retention is 7 days), through a second Inbox with a test clock.
		aged := newInbox(t, db, c, cfg)
		inbox.SetReceivedAt(aged, func() time.Time { return time.Now().Add(-8 * 24 * time.Hour) })
		recordKeys(t, aged, "old", old)
		// Not expired: six days old, and now.
		recent := newInbox(t, db, c, cfg)
		inbox.SetReceivedAt(recent, func() time.Time { return time.Now().Add(-6 * 24 * time.Hour) })
		recordKeys(t, recent, "six-days", fresh)
		recordKeys(t, ib, "fresh", fresh)
		// Another consumer's old keys are its own business.
		otherAged := newInbox(t, db, "other", cfg)
		inbox.SetReceivedAt(otherAged, func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) })
		recordKeys(t, otherAged, "other-old", 10)

		// Process keeps running during the purge: a worker records new keys and redelivers fresh ones.
		tr := startTraffic(ctx, ib, "during purge", func(string) inbox.Handler { return nop },
			func(i int) []string { return []string{fmt.Sprintf("fresh-%d", i%fresh)} })

		var batches []int
		var inBatchErr error
		inbox.SetAfterPurgeBatch(ib, func(n int) {
			batches = append(batches, n)
			if len(batches) == 1 {
				// Inside the first batch's open transaction: a new key and a redelivery must not wait for it.
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if res, err := ib.Process(pctx, inbox.Delivery{Key: "inside-batch"}, nop); err != nil || res != inbox.Processed {
					inBatchErr = fmt.Errorf("process during an open purge batch: %v, %v", res, err)
				}
				if res, err := ib.Process(pctx, inbox.Delivery{Key: "fresh-0", Payload: []byte("p")}, nop); err != nil || res != inbox.Duplicate {
					inBatchErr = errors.Join(inBatchErr, fmt.Errorf("redelivery during an open purge batch: %v, %v", res, err))
				}
				// The batch locks its own rows and no others: the oldest key is locked (deleted, uncommitted),
				// the newest expired key, due in a later batch, is not.
				if locked(t, db, c, "old-0") != true {
					inBatchErr = errors.Join(inBatchErr, errors.New("the first batch does not hold the oldest key (probe broken?)"))
				}
				if locked(t, db, c, fmt.Sprintf("old-%d", old-1)) {
					inBatchErr = errors.Join(inBatchErr, errors.New("the first batch locks an expired key beyond its batch"))
				}
			}
		})
		n, err := ib.Purge(ctx)
		if werr := tr.end(); werr != nil {
			t.Error(werr)
		}
		if err != nil || n != old {
			t.Fatalf("Purge = %d, %v; want %d", n, err, old)
		}
		if inBatchErr != nil {
			t.Fatal(inBatchErr)
		}
		if len(batches) < old/batch+1 {
			t.Errorf("purged in batches %v, want at least %d batches", batches, old/batch+1)
		}
		for _, b := range batches {
			if b > batch {
				t.Errorf("a batch deleted %d keys, more than PurgeBatchSize %d (batches %v)", b, batch, batches)
			}
		}
		if got := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox WHERE consumer = ? AND msg_key LIKE 'old-%'", c); got != 0 {
			t.Errorf("%d expired keys left", got)
		}
		want := 2*fresh + int(tr.rounds.Load()) + 1
		if got := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox WHERE consumer = ?", c); got != want {
			t.Errorf("%d keys left for %s, want %d (fresh, six days old, recorded during the purge)", got, c, want)
		}
		if got := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox WHERE consumer = ?", "other"); got != 10 {
			t.Errorf("%d keys left for another consumer, want 10", got)
		}
		// A purged key is new again: its redelivery runs.
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "old-0", Payload: []byte("p")}, nop); err != nil || res != inbox.Processed {
			t.Errorf("redelivery of a purged key: %v, %v; want processed", res, err)
		}
		// Nothing left to purge.
		if n, err := ib.Purge(ctx); err != nil || n != 0 {
			t.Errorf("second Purge = %d, %v; want 0", n, err)
		}
	}, testdb.MaxOpenConns(20), testdb.Partitioned(false))
}

// RunPurger purges in the background until its ctx ends and then returns nil without leaking goroutines
// (TestMain checks).
func TestRunPurger(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ib := newInbox(t, db, "c", inbox.Config{PurgeInterval: 20 * time.Millisecond, PurgeBatchSize: 3})
		aged := newInbox(t, db, "c", inbox.Config{})
		inbox.SetReceivedAt(aged, func() time.Time { return time.Now().Add(-10 * 24 * time.Hour) })
		recordKeys(t, aged, "old", 10)

		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ib.RunPurger(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox") != 0 {
			if time.Now().After(deadline) {
				t.Fatal("RunPurger did not purge the expired keys within 20s")
			}
			time.Sleep(10 * time.Millisecond) // polling the table
		}
		recordKeys(t, aged, "older", 4) // the loop goes on purging
		for countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox") != 0 {
			if time.Now().After(deadline) {
				t.Fatal("RunPurger did not purge keys expired after its first run")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("RunPurger returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("RunPurger did not return after its ctx was cancelled")
		}
	}, testdb.Partitioned(false))
}

// locked reports whether another transaction holds a lock on the inbox row (consumer, key), probing with
// SELECT ... FOR UPDATE NOWAIT in a transaction of its own.
func locked(t *testing.T, db *testdb.DB, consumer, key string) bool {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	defer tx.Rollback()
	var n int
	q := db.Rebind("SELECT COUNT(*) FROM txbox_inbox WHERE consumer = ? AND msg_key = ? FOR UPDATE NOWAIT")
	if db.Dialect == dialect.Postgres {
		// PostgreSQL does not allow FOR UPDATE with an aggregate.
		q = "SELECT COUNT(*) FROM (SELECT 1 FROM txbox_inbox WHERE consumer = $1 AND msg_key = $2 FOR UPDATE NOWAIT) AS l"
	}
	err = tx.QueryRowContext(ctx, q, consumer, key).Scan(&n)
	switch dialect.Classify(err) {
	case dialect.KindRetryable:
		return true
	case dialect.KindOther:
		if err != nil {
			t.Fatalf("probe %s: %v", key, err)
		}
	}
	return false
}
