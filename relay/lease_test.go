package relay_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/internal/faults"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// viaProxy returns a pool on db's database through a Proxy.
func viaProxy(t *testing.T, db *testdb.DB) (*faults.Proxy, *sqlx.DB) {
	t.Helper()
	p, pdb, err := faults.Proxied(db.Dialect.Name(), db.Target.Driver, db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	t.Cleanup(func() { _ = pdb.Close() })
	pdb.SetMaxOpenConns(10)
	return p, pdb
}

// keyedRows enqueues n rows, every other one keyed (10 sharding keys, numbered for faults.Recorder's order
// check), and returns their keys.
func keyedRows(t *testing.T, db *testdb.DB, n int) []string {
	t.Helper()
	seq := map[string]int{}
	keys := make([]string, n)
	enqueueMany(t, db, newOutbox(t, db), n, func(i int) outbox.Message {
		keys[i] = "row-" + strconv.Itoa(i)
		m := outbox.Message{Topic: "t", Key: keys[i]}
		if i%2 == 0 {
			m.ShardingKey = "s-" + strconv.Itoa(i%20)
			m.Headers = map[string]string{faults.SeqHeader: strconv.Itoa(seq[m.ShardingKey])}
			seq[m.ShardingKey]++
		}
		return m
	})
	return keys
}

// The case the lease exists for: a relay loses its database connection while its Publish calls are on the wire.
// The server frees everything the connection held, but the claim committed a lease: a second relay, running all
// along, takes the rows only after the first relay's calls have returned (the first stops LeaseMargin before its
// lease ends, its renewals failing), so no row and no sharding key is ever published twice at once, and nothing is
// lost.
func TestNoConcurrentPublishAfterConnectionLoss(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		keys := keyedRows(t, db, 40)
		p, pdb := viaProxy(t, db)
		rec := faults.NewRecorder(nil)
		var cut sync.Once
		var stalled atomic.Int32
		// The first relay's calls (marked in their ctx) cut its database connections once, then hold until the
		// batch's deadline: a broker that is slow while the database goes away.
		rec.Hook = func(ctx context.Context, _ outbox.Record) {
			if ctx.Value(firstRelay{}) == nil {
				return
			}
			cut.Do(func() { p.Refuse(true); p.CutAll() })
			stalled.Add(1)
			<-ctx.Done()
		}
		first := relay.PublisherFunc(func(ctx context.Context, r outbox.Record) error {
			return rec.Publish(context.WithValue(ctx, firstRelay{}, true), r)
		})
		var firstBatch atomic.Pointer[relay.BatchInfo]
		a := newRelay(t, &testdb.DB{DB: pdb, Target: db.Target, Dialect: db.Dialect}, first, func(c *relay.Config) {
			c.Workers, c.Lease = 1, time.Second
			c.OnBatch = func(b relay.BatchInfo) { firstBatch.CompareAndSwap(nil, &b) }
		})
		stopA := runRelay(t, a)
		waitUntil(t, 30*time.Second, "the first relay inside Publish", func() bool { return stalled.Load() > 0 })
		b := newRelay(t, db, rec, func(c *relay.Config) { c.Workers = 2 })
		stopB := runRelay(t, b)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rec.WaitDistinct(ctx, len(keys)); err != nil {
			t.Fatal(err)
		}
		stopB()
		p.Refuse(false)
		stopA()
		rep := rec.Report(keys)
		if rep.Lost != 0 || rep.ConcurrentRows != 0 || rep.ConcurrentKeys != 0 || len(rep.OrderErrors) != 0 {
			t.Errorf("report %+v", rep)
		}
		if c := count(t, db, "txbox_outbox"); c != 0 {
			t.Errorf("%d rows left in the outbox", c)
		}
		// The first relay confirmed nothing, and its finish (retried until the proxy let it through, or given up)
		// changed none of the rows the second relay had taken over: fenced by the claim token.
		if fb := firstBatch.Load(); fb == nil || fb.Published != 0 || (fb.Err == nil && fb.Lost != fb.Claimed) {
			t.Errorf("first relay's batch %+v: want nothing confirmed, and a failed finish or every row lost to the takeover", fb)
		}
	})
}

type firstRelay struct{}

// A batch that publishes for longer than its lease renews it: a second relay claiming all along never takes its
// rows, so nothing is published twice (at once or at all) and the batch finishes with every row still its own.
func TestLeaseRenewedWhilePublishing(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob := newOutbox(t, db)
		var keys []string
		enqueueMany(t, db, ob, 12, func(i int) outbox.Message {
			keys = append(keys, "k"+strconv.Itoa(i))
			return outbox.Message{Topic: "t", Key: keys[i], ShardingKey: "one",
				Headers: map[string]string{faults.SeqHeader: strconv.Itoa(i)}}
		})
		rec := faults.NewRecorder(nil)
		// 12 rows of one key at 500ms: 6s of publishing under a 2s lease, renewed twice or more. (A renewal has
		// Lease to answer; under a 1s lease a loaded machine's slow renewal ends the lease, as it should.)
		rec.MinDelay, rec.MaxDelay = 500*time.Millisecond, 500*time.Millisecond
		var mu sync.Mutex
		var batches []relay.BatchInfo
		onBatch := func(b relay.BatchInfo) {
			mu.Lock()
			batches = append(batches, b)
			mu.Unlock()
		}
		for range 2 {
			runRelay(t, newRelay(t, db, rec, func(c *relay.Config) { c.Workers, c.Lease, c.OnBatch = 2, 2*time.Second, onBatch }))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := rec.WaitDistinct(ctx, len(keys)); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 30*time.Second, "outbox empty", func() bool { return count(t, db, "txbox_outbox") == 0 })
		rep := rec.Report(keys)
		if rep.Lost != 0 || rep.Duplicates != 0 || rep.ConcurrentRows != 0 || rep.ConcurrentKeys != 0 || len(rep.OrderErrors) != 0 {
			t.Errorf("report %+v", rep)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, b := range batches {
			if b.Err != nil || b.Lost != 0 {
				t.Errorf("batch %+v: want no error and no row lost to another claim", b)
			}
		}
	})
}
