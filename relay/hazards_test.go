package relay_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// Invariant 4: a transaction that holds a low id while later ones commit and get published is still
// published when it commits; a rolled-back transaction never is.
func TestOutOfOrderCommitsAndRollbacks(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ob := newOutbox(t, db)
		pub := newTestPub(0, 0)
		stop := runRelay(t, newRelay(t, db, pub, func(c *relay.Config) { c.Workers = 2 }))

		begin := func(keys ...string) *txHandle {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			var msgs []outbox.Message
			for i, k := range keys {
				m := outbox.Message{Topic: "t", Key: k}
				if i%2 == 1 { // mix keyed and unkeyed rows
					m.ShardingKey = "s-" + k
					m.Headers = map[string]string{"seq": "0"}
				}
				msgs = append(msgs, m)
			}
			if err := ob.Enqueue(ctx, tx, msgs...); err != nil {
				t.Fatal(err)
			}
			return &txHandle{tx: tx}
		}
		held := begin("held-1", "held-2")       // lowest ids, committed last
		rolled := begin("rolled-1", "rolled-2") // never committed
		var later []string
		for i := range 20 {
			k1, k2 := fmt.Sprintf("later-%d-a", i), fmt.Sprintf("later-%d-b", i)
			later = append(later, k1, k2)
			h := begin(k1, k2)
			if err := h.tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		pub.waitDistinct(t, len(later), 30*time.Second)
		if err := rolled.tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if err := held.tx.Commit(); err != nil {
			t.Fatal(err)
		}
		pub.waitDistinct(t, len(later)+2, 30*time.Second)
		stop()
		pub.check(t, append(later, "held-1", "held-2"))
		if pub.has("rolled-1") || pub.has("rolled-2") {
			t.Fatal("a rolled-back row was published")
		}
		if c := count(t, db, "txbox_outbox"); c != 0 {
			t.Fatalf("%d rows left in the outbox", c)
		}
	})
}

type txHandle struct {
	tx interface {
		Commit() error
		Rollback() error
	}
}

// Invariants 4 and 5 under load: 3 relays, a publisher that fails 5% of calls and loses the confirm on 2%.
func TestThreeRelaysFlakyPublisher(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) { threeRelays(t, db, false) }, testdb.MaxOpenConns(40))
}

// The MariaDB hazard: statistics that say the outbox is empty (ANALYZE before the bulk load, no automatic
// recalculation) once made the relay's DELETE a full scan that deadlocked concurrent relays.
func TestThreeRelaysStaleStatistics(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		if db.Dialect.Name() != "mysql" {
			t.Skip("stale statistics are a MariaDB hazard")
		}
		threeRelays(t, db, true)
	}, testdb.MaxOpenConns(40))
}

func threeRelays(t *testing.T, db *testdb.DB, stale bool) {
	ctx := context.Background()
	if stale {
		for _, q := range []string{"ANALYZE TABLE txbox_outbox", "ALTER TABLE txbox_outbox STATS_PERSISTENT=1, STATS_AUTO_RECALC=0"} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	n := 20000
	if testing.Short() {
		n = 3000
	}
	ob := newOutbox(t, db)
	keys := make([]string, n)
	enqueueMany(t, db, ob, n, func(i int) outbox.Message {
		keys[i] = "row-" + strconv.Itoa(i)
		m := outbox.Message{Topic: "t", Key: keys[i], Payload: []byte("x")}
		if i%4 == 0 { // a quarter keyed, across 100 sharding keys
			m.ShardingKey = "s-" + strconv.Itoa(i%400/4)
			m.Headers = map[string]string{"seq": strconv.Itoa(i / 400)}
		}
		return m
	})
	pub := newTestPub(0.05, 0.02)
	var mu sync.Mutex
	var dbErrs []error
	onBatch := func(b relay.BatchInfo) {
		if b.Err != nil {
			mu.Lock()
			dbErrs = append(dbErrs, b.Err)
			mu.Unlock()
		}
	}
	var stops []func()
	for range 3 {
		r := newRelay(t, db, pub, func(c *relay.Config) { c.Workers = 2; c.OnBatch = onBatch; c.BatchSize = 200 })
		stops = append(stops, runRelay(t, r))
	}
	pub.waitDistinct(t, n, 3*time.Minute)
	waitUntil(t, time.Minute, "outbox empty", func() bool { return count(t, db, "txbox_outbox") == 0 })
	for _, s := range stops {
		s()
	}
	pub.check(t, keys)
	deadlocks := 0
	for _, err := range dbErrs {
		if isRetryable(err) {
			deadlocks++
		}
	}
	if deadlocks > 0 || len(dbErrs) > 0 {
		t.Errorf("%d batch errors (%d deadlocks/lock timeouts), first: %v", len(dbErrs), deadlocks, dbErrs[0])
	}
}

// Invariant 6: 50 sharding keys x 100 rows, 4 workers (and a second relay), failures injected: each key's rows
// reach the publisher in order.
func TestShardingKeyOrder(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob := newOutbox(t, db)
		var keys []string
		enqueueMany(t, db, ob, 5000, func(i int) outbox.Message {
			k := "row-" + strconv.Itoa(i)
			keys = append(keys, k)
			return outbox.Message{Topic: "t", Key: k, ShardingKey: "key-" + strconv.Itoa(i%50),
				Headers: map[string]string{"seq": strconv.Itoa(i / 50)}}
		})
		pub := newTestPub(0.1, 0.02)
		for range 2 {
			runRelay(t, newRelay(t, db, pub, func(c *relay.Config) { c.Workers = 4; c.BatchSize = 100 }))
		}
		pub.waitDistinct(t, len(keys), 2*time.Minute)
		waitUntil(t, time.Minute, "outbox empty", func() bool { return count(t, db, "txbox_outbox") == 0 })
		pub.check(t, keys)
	}, testdb.MaxOpenConns(30))
}

// A failing row holds back only its own sharding key.
func TestFailingKeyHoldsOnlyItself(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob := newOutbox(t, db)
		for i := range 10 {
			enqueue(t, db, ob,
				outbox.Message{Topic: "t", Key: "bad-" + strconv.Itoa(i), ShardingKey: "bad"},
				outbox.Message{Topic: "t", Key: "good-" + strconv.Itoa(i), ShardingKey: "good"},
				outbox.Message{Topic: "t", Key: "free-" + strconv.Itoa(i)})
		}
		var mu sync.Mutex
		var got []string
		pub := relay.PublisherFunc(func(ctx context.Context, r outbox.Record) error {
			if r.Key == "bad-0" {
				return errInjected
			}
			mu.Lock()
			got = append(got, r.Key)
			mu.Unlock()
			return nil
		})
		r := newRelay(t, db, pub, func(c *relay.Config) { c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour })
		n, err := r.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != 20 {
			t.Fatalf("Drain published %d, want 20 (every good and free row): %v", n, got)
		}
		for _, k := range got {
			if k[:3] == "bad" {
				t.Fatalf("%s published while bad-0 failed", k)
			}
		}
		if c := count(t, db, "txbox_outbox"); c != 10 {
			t.Fatalf("%d rows left, want the 10 of key bad", c)
		}
	})
}

// Six relays of four workers on keyed rows only, small batches, 20% failures and 5% lost confirms: the case
// that exposed MariaDB keeping locks on rows its unkeyed claim stepped over (deadlocks with keyed owners'
// deletes). No batch may fail, no key may be published concurrently or out of order.
func TestSixRelaysKeyedRows(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		n := 8000
		if testing.Short() {
			n = 2000
		}
		ob := newOutbox(t, db)
		keys := make([]string, n)
		enqueueMany(t, db, ob, n, func(i int) outbox.Message {
			keys[i] = "row-" + strconv.Itoa(i)
			return outbox.Message{Topic: "t", Key: keys[i], ShardingKey: "s-" + strconv.Itoa(i%100),
				Headers: map[string]string{"seq": strconv.Itoa(i / 100)}}
		})
		pub := newTestPub(0.2, 0.05)
		var mu sync.Mutex
		var errs []error
		for range 6 {
			runRelay(t, newRelay(t, db, pub, func(c *relay.Config) {
				c.Workers, c.BatchSize = 4, 30
				c.OnBatch = func(b relay.BatchInfo) {
					if b.Err != nil {
						mu.Lock()
						errs = append(errs, b.Err)
						mu.Unlock()
					}
				}
			}))
		}
		pub.waitDistinct(t, n, 3*time.Minute)
		waitUntil(t, time.Minute, "outbox empty", func() bool { return count(t, db, "txbox_outbox") == 0 })
		pub.check(t, keys)
		for i, err := range errs {
			if i == 3 {
				break
			}
			t.Errorf("batch failed: %v", err)
		}
	}, testdb.MaxOpenConns(60))
}
