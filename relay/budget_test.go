package relay_test

import (
	"context"
	"crypto/rand"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// Item 8 of issue 11: a relay's memory grew with batch size × payload size (100 rows of 4 MiB took 616 MiB). With
// MaxBatchBytes a claim stops taking rows at the budget: draining 4 MiB payloads with BatchSize 100 and a 12 MiB
// budget, no batch holds more than three rows and the live heap, measured inside every Publish call, stays under
// the budget plus a constant (the drivers' buffers and one row's copies).
//
// Not parallel, and the targets one after another: the heap is the process's, other tests would show in it.
func TestByteBudgetBoundsMemory(t *testing.T) {
	const (
		payload = 4 << 20
		rows    = 15
		budget  = 12 << 20
		slack   = 24 << 20
	)
	for _, tg := range testdb.Targets {
		t.Run(tg.Name, func(t *testing.T) {
			db := testdb.Open(t, tg)
			ob := newOutbox(t, db)
			for i := range rows { // one row per transaction: MariaDB's packet limit
				p := make([]byte, payload)
				_, _ = rand.Read(p)
				enqueue(t, db, ob, outbox.Message{Topic: "t", Key: "big-" + strconv.Itoa(i), Payload: p})
			}
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapAlloc
			var mu sync.Mutex
			var peak uint64
			published := 0
			pub := relay.PublisherFunc(func(_ context.Context, r outbox.Record) error {
				// Live heap, not garbage the collector has not reached yet: what the relay holds.
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				mu.Lock()
				defer mu.Unlock()
				peak = max(peak, ms.HeapAlloc)
				if len(r.Payload) != payload {
					t.Errorf("%s: payload of %d bytes", r.Key, len(r.Payload))
				}
				published++
				return nil
			})
			most := 0
			r := newRelay(t, db, pub, func(c *relay.Config) {
				c.Workers, c.BatchSize, c.MaxBatchBytes = 1, 100, budget
				c.OnBatch = func(b relay.BatchInfo) { most = max(most, b.Claimed) }
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			n, err := r.Drain(ctx)
			if err != nil || n != rows {
				t.Fatalf("Drain = %d, %v; want %d", n, err, rows)
			}
			grew := int64(peak) - int64(base)
			t.Logf("heap grew by %d MiB at most (budget %d MiB); largest batch %d rows", grew>>20, budget>>20, most)
			if most > budget/payload {
				t.Errorf("a batch claimed %d rows of %d MiB with a %d MiB budget", most, payload>>20, budget>>20)
			}
			if grew > budget+slack {
				t.Errorf("heap grew by %d MiB, want at most the budget + %d MiB", grew>>20, slack>>20)
			}
		})
	}
}
