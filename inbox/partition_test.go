package inbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// partitionsOf lists the partitions of txbox_inbox_keys with their row counts, the catch-all named "catch-all".
func partitionsOf(t testing.TB, db *testdb.DB) map[string]int {
	t.Helper()
	ctx := context.Background()
	var names []string
	q := "SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'txbox_inbox_keys'"
	if db.Dialect == dialect.Postgres {
		q = "SELECT relname FROM pg_inherits JOIN pg_class ON oid = inhrelid WHERE inhparent = 'txbox_inbox_keys'::regclass"
	}
	if err := db.SelectContext(ctx, &names, q); err != nil {
		t.Fatalf("list partitions: %v", err)
	}
	out := map[string]int{}
	for _, n := range names {
		from := "txbox_inbox_keys PARTITION (" + n + ")"
		if db.Dialect == dialect.Postgres {
			from = n
		}
		name := n
		if n == "pmax" || strings.HasSuffix(n, "_default") {
			name = "catch-all"
		}
		out[name] = countRows(t, db, "SELECT COUNT(*) FROM "+from)
	}
	return out
}

// A fresh installation whose partitions were never made (no purger ran yet, or it was down for days): Process
// records keys in the catch-all partition and finds them there, a log says the partition is missing, and the
// next maintenance moves them into partitions of their own, where they are still duplicates.
func TestCatchAllTakesKeysUntilPartitionsExist(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		var logs bytes.Buffer
		var mu sync.Mutex
		logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), nil))
		ib := newInbox(t, db, "c", inbox.Config{Logger: logger})
		for i := range 5 {
			k := fmt.Sprintf("k%d", i)
			if res, err := ib.Process(ctx, inbox.Delivery{Key: k, Payload: []byte("p")}, effectHandler(db, "c", k)); err != nil || res != inbox.Processed {
				t.Fatalf("%s: %v, %v", k, res, err)
			}
		}
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "k0", Payload: []byte("p")}, effectHandler(db, "c", "k0")); err != nil || res != inbox.Duplicate {
			t.Fatalf("redelivery from the catch-all: %v, %v", res, err)
		}
		if got := partitionsOf(t, db); len(got) != 1 || got["catch-all"] != 5 {
			t.Fatalf("partitions before maintenance: %v, want only the catch-all, with 5 keys", got)
		}
		mu.Lock()
		warned := strings.Contains(logs.String(), "no partition for the next period")
		mu.Unlock()
		if !warned {
			t.Errorf("no warning about the missing partition; logs:\n%s", logs.String())
		}
		if _, err := ib.Purge(ctx); err != nil {
			t.Fatalf("Purge: %v", err)
		}
		got := partitionsOf(t, db)
		total := 0
		for name, n := range got {
			if name != "catch-all" {
				total += n
			}
		}
		if got["catch-all"] != 0 || total != 5 || len(got) < 4 {
			t.Fatalf("partitions after maintenance: %v; want the 5 keys out of the catch-all, partitions ahead", got)
		}
		for i := range 5 {
			k := fmt.Sprintf("k%d", i)
			if res, err := ib.Process(ctx, inbox.Delivery{Key: k, Payload: []byte("p")}, effectHandler(db, "c", k)); err != nil || res != inbox.Duplicate {
				t.Errorf("%s after the move: %v, %v; want duplicate", k, res, err)
			}
		}
	}, testdb.Partitioned(true))
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// ageKey moves every row of key into the bucket of at, as if it had been recorded then.
func ageKey(t testing.TB, db *testdb.DB, consumer, key string, at time.Time, period time.Duration) {
	t.Helper()
	b := at.Unix() / int64(period/time.Second)
	q := db.Rebind("UPDATE txbox_inbox_keys SET bucket = ? WHERE consumer = ? AND msg_key = ?")
	if _, err := db.ExecContext(context.Background(), q, b, consumer, key); err != nil {
		t.Fatalf("age %s: %v", key, err)
	}
}

// Purge drops whole the partitions whose keys are all older than the retention, while Process runs: the
// dropped keys are new again, live keys stay duplicates, and a parked key in a dropped partition stays parked
// (it was carried into the current partition), until its dead letter is dropped.
func TestPartitionDropWhileProcessing(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		const c, period = "dropper", 24 * time.Hour
		ib := newInbox(t, db, c, inbox.Config{MaxAttempts: 1})
		inbox.SetPartitionPeriod(ib, period)
		// Keys recorded 9 days ago, 3 days ago (live) and now; one parked 9 days ago.
		aged := newInbox(t, db, c, inbox.Config{})
		inbox.SetReceivedAt(aged, func() time.Time { return time.Now().Add(-9 * 24 * time.Hour) })
		recordKeys(t, aged, "old", 20)
		recent := newInbox(t, db, c, inbox.Config{})
		inbox.SetReceivedAt(recent, func() time.Time { return time.Now().Add(-3 * 24 * time.Hour) })
		recordKeys(t, recent, "recent", 20)
		recordKeys(t, ib, "fresh", 20)
		if res, err := ib.Park(ctx, inbox.Delivery{Key: "poison", Payload: []byte("x")}, errors.New("cannot decode")); err != nil || res != inbox.Parked {
			t.Fatalf("park: %v, %v", res, err)
		}
		ageKey(t, db, c, "poison", time.Now().Add(-9*24*time.Hour), period)

		tr := startTraffic(ctx, ib, "during the drop", func(k string) inbox.Handler { return effectHandler(db, c, k) },
			func(i int) []string { return []string{fmt.Sprintf("recent-%d", i%20), fmt.Sprintf("fresh-%d", i%20)} })
		// The drop waits at most 2s for in-flight transactions; under load it may try again.
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := ib.Purge(ctx)
			if err == nil && countKeys(t, db, "msg_key LIKE 'old-%'") == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("old keys not dropped after 30s: %v; partitions %v", err, partitionsOf(t, db))
			}
			time.Sleep(100 * time.Millisecond) // as the purger would, later
		}
		for tr.rounds.Load() < 3 {
			if time.Now().After(deadline) {
				t.Fatal("the worker made no progress")
			}
			time.Sleep(10 * time.Millisecond) // waiting for the worker's rounds, which assert on their own
		}
		if err := tr.end(); err != nil {
			t.Fatal(err)
		}
		if n := countKeys(t, db, "msg_key LIKE 'recent-%' OR msg_key LIKE 'fresh-%'"); n != 40 {
			t.Errorf("%d live keys left, want 40", n)
		}
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "poison", Payload: []byte("x")}, nop); err != nil || res != inbox.Parked {
			t.Errorf("parked key after its partition was dropped: %v, %v; want parked", res, err)
		}
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "old-0", Payload: []byte("p")}, effectHandler(db, c, "old-0")); err != nil || res != inbox.Processed {
			t.Errorf("a dropped key redelivered: %v, %v; want processed (new again)", res, err)
		}
		dead, err := ib.ListDead(ctx, inbox.DeadFilter{Key: "poison"})
		if err != nil || len(dead) != 1 {
			t.Fatalf("ListDead: %v, %v", dead, err)
		}
		if err := ib.DropDead(ctx, dead[0].ID); err != nil {
			t.Fatalf("DropDead: %v", err)
		}
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "poison", Payload: []byte("x")}, nop); err != nil || res != inbox.Duplicate {
			t.Errorf("parked key after DropDead: %v, %v; want duplicate (settled)", res, err)
		}
	}, testdb.Partitioned(true), testdb.MaxOpenConns(20))
}

// The application's clock never decides a bucket or a drop: maintenance by a process whose clock is days off
// drops nothing live, and a key recorded right after lands in a live partition (never in a dropped range).
func TestApplicationClockSkewIsHarmless(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		for _, skew := range []time.Duration{30 * 24 * time.Hour, -30 * 24 * time.Hour} {
			ib := newInbox(t, db, "skew", inbox.Config{})
			inbox.SetAppClock(ib, func() time.Time { return time.Now().Add(skew) })
			recordKeys(t, ib, fmt.Sprintf("skew%d", skew/time.Hour), 3)
			if _, err := ib.Purge(ctx); err != nil {
				t.Fatalf("Purge with the application's clock %s off: %v", skew, err)
			}
		}
		if n := countKeys(t, db, "1 = 1"); n != 6 {
			t.Errorf("%d keys left, want 6: maintenance dropped live keys", n)
		}
		recordKeys(t, newInbox(t, db, "skew", inbox.Config{}), "after", 1)
		now := dbNow(t, db)
		b := now.Unix() / int64(24*time.Hour/time.Second)
		if got := keyBuckets(t, db, "skew", "after-0"); len(got) == 0 || got[0] != b {
			t.Errorf("key recorded in buckets %v, want the database clock's %d", got, b)
		}
		if got := partitionsOf(t, db); got["catch-all"] != 0 {
			t.Errorf("keys in the catch-all: %v", got)
		}
	}, testdb.Partitioned(true))
}
