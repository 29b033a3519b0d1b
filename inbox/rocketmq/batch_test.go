package rocketmq_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
)

// With BatchSize above 1 the messages of a callback go through ProcessBatch: 400 keys, each published twice,
// the first handler run of every tenth key failing (its whole callback is sent back, the committed messages of
// it come back as duplicates): exactly one effect per key. On PostgreSQL the handlers also record their
// transaction id, which shows that callbacks really held several messages in one transaction.
func TestBatchConsumption(t *testing.T) {
	const n = 400
	for _, name := range []string{"mariadb", "postgres-pgx"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newBed(t, target(t, name), 2, inbox.Config{})
			want := keys("batch", n)
			for i, k := range want {
				e.publish(int64(2*i+1), k, "", "payload of "+k)
				e.publish(int64(2*i+2), k, "", "payload of "+k)
			}
			var mu sync.Mutex
			failed := map[string]bool{}
			perTx := map[int64]int{}
			var acked atomic.Int32 // every delivery chain ends with one acknowledged delivery
			e.consumer(func(c *rocketmq.Config) {
				c.BatchSize = 16
				c.OnOutcome = func(o rocketmq.Outcome) {
					if o.Acked {
						acked.Add(1)
					}
				}
			}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
				if e.db.Dialect.Name() == "postgres" {
					var id int64
					if err := tx.QueryRowContext(ctx, "SELECT txid_current()").Scan(&id); err != nil {
						return err
					}
					mu.Lock()
					perTx[id]++
					mu.Unlock()
				}
				if err := effect(ctx, tx, m, 0); err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if strings.HasSuffix(m.Key, "0") && !failed[m.Key] {
					failed[m.Key] = true
					return errors.New("injected failure")
				}
				return nil
			})
			// Until every message is acknowledged, the client may still be sending failed batches back.
			waitFor(t, 4*time.Minute, "every message acknowledged", func() bool { return acked.Load() >= 2*n })
			e.exactlyOnce(want)
			mu.Lock()
			defer mu.Unlock()
			if len(failed) != n/10 {
				t.Errorf("%d keys failed once, want %d", len(failed), n/10)
			}
			if e.db.Dialect.Name() == "postgres" {
				most := 0
				for _, c := range perTx {
					most = max(most, c)
				}
				if most < 2 {
					t.Errorf("no transaction ran more than one handler (%d transactions): the batches were not batched", len(perTx))
				}
			}
			dead, err := e.ib.ListDead(context.Background(), inbox.DeadFilter{})
			if err != nil || len(dead) != 0 {
				t.Fatalf("dead letters %v, %v; want none", dead, err)
			}
		})
	}
}
