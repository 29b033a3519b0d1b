package rocketmq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// TestRelayToInboxEndToEnd: 5,000 messages enqueued in outbox transactions are relayed to the broker by
// relay/rocketmq and consumed through the inbox by this package; every business effect is committed exactly
// once, the outbox is empty and nothing was parked. On MariaDB and PostgreSQL.
func TestRelayToInboxEndToEnd(t *testing.T) {
	const n, perTx = 5000, 100
	for _, name := range []string{"mariadb", "postgres-pgx"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newBed(t, target(t, name), 4, inbox.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()

			ob, err := outbox.New(outbox.Config{Dialect: e.db.Dialect})
			if err != nil {
				t.Fatal(err)
			}
			want := keys("e2e", n)
			for start := 0; start < n; start += perTx {
				tx, err := e.db.BeginTxx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				msgs := make([]outbox.Message, 0, perTx)
				for i := start; i < start+perTx; i++ {
					m := outbox.Message{Topic: e.topic, Key: want[i], Payload: []byte(want[i]),
						Headers: map[string]string{"n": fmt.Sprint(i)}}
					if i%4 == 0 {
						m.ShardingKey = fmt.Sprintf("customer-%d", i%40)
					}
					msgs = append(msgs, m)
				}
				if err := ob.Enqueue(ctx, tx, msgs...); err != nil {
					t.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			}

			e.consumer(func(c *rocketmq.Config) { c.Goroutines = 12 },
				func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error { return effect(ctx, tx, m, 0) })

			r, err := relay.New(e.db.DB, relay.Config{Dialect: e.db.Dialect, Publisher: e.pub})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			published, err := r.Drain(ctx)
			if err != nil || published != n {
				t.Fatalf("relay drained %d rows (%v), want %d", published, err, n)
			}
			relayed := time.Since(start)
			waitFor(t, 4*time.Minute, "every effect", func() bool { return e.countEffects() >= n })
			t.Logf("info: %s: %d messages relayed in %s, all consumed after %s", name, n, relayed.Round(time.Millisecond),
				time.Since(start).Round(time.Millisecond))
			e.exactlyOnce(want)

			var left int
			if err := e.db.Get(&left, "SELECT COUNT(*) FROM txbox_outbox"); err != nil {
				t.Fatal(err)
			}
			dead, err := e.ib.ListDead(ctx, inbox.DeadFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if left != 0 || len(dead) != 0 {
				t.Fatalf("%d outbox rows left, %d inbox dead letters; want none", left, len(dead))
			}
		})
	}
}
