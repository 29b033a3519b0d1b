package relay_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

// A topic whose broker is unreachable (the Publisher says ErrUnavailable): its breaker opens once, its rows are
// held without counting attempts (none reaches the dead-letter table, though MaxAttempts is 2), other topics keep
// flowing, one probe goes out per ProbeInterval, and when the broker answers again the breaker closes once and
// every held row is published, with Attempt 1, in order per sharding key.
func TestBreakerHoldsTopicDuringOutage(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob := newOutbox(t, db)
		var down, up []string
		enqueueMany(t, db, ob, 300, func(i int) outbox.Message {
			m := outbox.Message{Topic: "up", Key: "up-" + strconv.Itoa(i)}
			if i%3 != 0 {
				m.Topic, m.Key = "down", "down-"+strconv.Itoa(i)
				if i%2 == 0 {
					m.ShardingKey = "s" + strconv.Itoa(i%7)
				}
				down = append(down, m.Key)
			} else {
				up = append(up, m.Key)
			}
			return m
		})
		var outage atomic.Bool
		outage.Store(true)
		var probes atomic.Int32
		pub := memory.New()
		pub.Fail = func(r outbox.Record) error {
			if r.Topic == "down" && outage.Load() {
				probes.Add(1)
				return fmt.Errorf("dial tcp 127.0.0.1:10911: connect: connection refused: %w", relay.ErrUnavailable)
			}
			return nil
		}
		var mu sync.Mutex
		var changes []relay.BreakerChange
		logs := &lineCounter{}
		r := newRelay(t, db, pub, func(c *relay.Config) {
			c.MaxAttempts, c.ProbeInterval, c.Logger = 2, 20*time.Millisecond, logs.logger()
			c.OnBreaker = func(b relay.BreakerChange) {
				mu.Lock()
				changes = append(changes, b)
				mu.Unlock()
			}
		})
		runRelay(t, r)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pub.WaitFor(ctx, func(recs []outbox.Record) bool { return len(recs) >= len(up) }); err != nil {
			t.Fatalf("the healthy topic was not published: %v", err)
		}
		// Let the outage run on for a while: the breaker is open, probes go out, attempts do not grow.
		waitUntil(t, 30*time.Second, "probes during the outage", func() bool { return probes.Load() > 10 })
		if n := count(t, db, "txbox_outbox_dead"); n != 0 {
			t.Fatalf("%d rows dead-lettered during the outage", n)
		}
		var attempts int
		if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(attempts), 0) FROM txbox_outbox").Scan(&attempts); err != nil || attempts != 0 {
			t.Fatalf("highest attempts during the outage: %d (%v), want 0", attempts, err)
		}
		outage.Store(false)
		if err := pub.WaitFor(ctx, func(recs []outbox.Record) bool { return len(recs) >= len(up)+len(down) }); err != nil {
			t.Fatalf("held rows not published after the outage: %v", err)
		}
		seen := map[string]int{}
		last := map[string]int{}
		for _, rec := range pub.Records() {
			seen[rec.Key]++
			if rec.Attempt != 1 {
				t.Errorf("%s published as attempt %d, want 1 (outage attempts are not counted)", rec.Key, rec.Attempt)
			}
			if rec.ShardingKey != "" {
				if prev, ok := last[rec.ShardingKey]; ok && int(rec.ID) < prev {
					t.Errorf("sharding key %s: row %d published after %d", rec.ShardingKey, rec.ID, prev)
				}
				last[rec.ShardingKey] = int(rec.ID)
			}
		}
		for _, k := range append(up, down...) {
			if seen[k] != 1 {
				t.Errorf("%s published %d times", k, seen[k])
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(changes) != 2 || changes[0].Topic != "down" || !changes[0].Open || changes[1].Open || changes[1].Outage <= 0 {
			t.Errorf("breaker changes %+v, want down opened, then closed with its outage", changes)
		}
		if o, c := logs.count("relay: topic unavailable; holding its rows (no attempts counted) and probing"),
			logs.count("relay: topic available again; its held rows are due"); o != 1 || c != 1 {
			t.Errorf("%d opening and %d closing lines, want one each", o, c)
		}
	})
}
