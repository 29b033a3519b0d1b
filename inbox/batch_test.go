package inbox_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// batchEffect inserts one effect row for the delivery's key in the batch's transaction.
func batchEffect(db *testdb.DB, consumer string) inbox.BatchHandler {
	q := db.Rebind("INSERT INTO effects (consumer, k) VALUES (?, ?)")
	return func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
		_, err := tx.ExecContext(ctx, q, consumer, d.Key)
		return err
	}
}

// One batch with every kind of outcome: the handlers that fail (an error, a panic, a failed statement) lose
// their own writes and keys only; everything else commits once; results come back in the order of the batch.
func TestProcessBatchOutcomes(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		const c = "batch"
		ib := newInbox(t, db, c, inbox.Config{})
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "seen", Payload: []byte("p")}, nop); err != nil || res != inbox.Processed {
			t.Fatalf("record key seen: %v, %v", res, err)
		}
		if res, err := ib.Process(ctx, inbox.Delivery{Key: "other-body", Payload: []byte("a")}, nop); err != nil || res != inbox.Processed {
			t.Fatalf("record key other-body: %v, %v", res, err)
		}
		ds := []inbox.Delivery{
			{Key: "z-ok", Payload: []byte("p")},
			{Key: "panics", Payload: []byte("p")},
			{Key: "seen", Payload: []byte("p")},
			{Key: "fails", Payload: []byte("p")},
			{Key: "a-ok", Payload: []byte("p")},
			{Key: "bad-sql", Payload: []byte("p")},
			{Key: "z-ok", Payload: []byte("p")}, // the same key again in the batch
			{Key: "", Payload: []byte("p")},     // invalid
			{Key: "other-body", Payload: []byte("b")},
		}
		boom := errors.New("boom")
		write := batchEffect(db, c)
		var ran sync.Map
		res := ib.ProcessBatch(ctx, ds, func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
			n, _ := ran.LoadOrStore(d.Key, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			if err := write(ctx, tx, d); err != nil {
				return err
			}
			switch d.Key {
			case "panics":
				panic("handler panic")
			case "fails":
				return boom
			case "bad-sql":
				_, err := tx.ExecContext(ctx, "SELECT no_such_column FROM effects")
				return err
			}
			return nil
		})
		if len(res) != len(ds) {
			t.Fatalf("%d results for %d deliveries", len(res), len(ds))
		}
		want := []inbox.Result{inbox.Processed, inbox.Failed, inbox.Duplicate, inbox.Failed, inbox.Processed,
			inbox.Failed, inbox.Duplicate, inbox.Failed, inbox.Failed}
		for n, r := range res {
			if r.Result != want[n] {
				t.Errorf("delivery %d (%q): %v, %v; want %v", n, ds[n].Key, r.Result, r.Err, want[n])
			}
			if (r.Result == inbox.Failed) != (r.Err != nil) {
				t.Errorf("delivery %d (%q): result %v with error %v", n, ds[n].Key, r.Result, r.Err)
			}
		}
		if !errors.Is(res[1].Err, inbox.ErrHandlerPanic) || !errors.Is(res[3].Err, boom) ||
			!errors.Is(res[7].Err, inbox.ErrInvalidDelivery) || !errors.Is(res[8].Err, inbox.ErrFingerprintMismatch) {
			t.Errorf("errors: panic %v, fails %v, invalid %v, other body %v", res[1].Err, res[3].Err, res[7].Err, res[8].Err)
		}
		for key, want := range map[string]int{"z-ok": 1, "a-ok": 1, "panics": 0, "fails": 0, "bad-sql": 0, "seen": 0} {
			if n := effects(t, db, c, key); n != want {
				t.Errorf("effects of %q = %d, want %d", key, n, want)
			}
		}
		if n, _ := ran.Load("z-ok"); n.(*atomic.Int32).Load() != 1 {
			t.Errorf("handler of z-ok ran %d times, want 1", n.(*atomic.Int32).Load())
		}
		if _, ok := ran.Load("seen"); ok {
			t.Error("the handler ran for a recorded key")
		}
		// The failed keys are not recorded and their failures are counted; the others are recorded.
		for _, key := range []string{"panics", "fails", "bad-sql"} {
			if n := countKeys(t, db, "consumer = ? AND msg_key = ?", c, key); n != 0 {
				t.Errorf("failed key %q recorded", key)
			}
			if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts WHERE consumer = ? AND msg_key = ? AND attempts = 1", c, key); n != 1 {
				t.Errorf("failure of %q not counted once", key)
			}
		}
		for _, key := range []string{"z-ok", "a-ok"} {
			if n := countKeys(t, db, "consumer = ? AND msg_key = ?", c, key); n != 1 {
				t.Errorf("processed key %q not recorded", key)
			}
		}
		// Redelivered, the failed ones run and the others are duplicates.
		redo := []inbox.Delivery{ds[1], ds[3], ds[5], ds[0]}
		for n := range redo {
			redo[n].Attempt = 1
		}
		res = ib.ProcessBatch(ctx, redo, batchEffect(db, c))
		want = []inbox.Result{inbox.Processed, inbox.Processed, inbox.Processed, inbox.Duplicate}
		for n, r := range res {
			if r.Result != want[n] || r.Err != nil {
				t.Errorf("redelivery %d (%q): %v, %v; want %v", n, redo[n].Key, r.Result, r.Err, want[n])
			}
		}
		for _, key := range []string{"panics", "fails", "bad-sql", "z-ok"} {
			if n := effects(t, db, c, key); n != 1 {
				t.Errorf("effects of %q after the redelivery = %d, want 1", key, n)
			}
			if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts WHERE consumer = ? AND msg_key = ?", c, key); n != 0 {
				t.Errorf("attempts of %q not cleared by its successful redelivery", key)
			}
		}
	})
}

// A delivery that reaches MaxAttempts in a batch is parked, and its result is Parked without an error; a later
// batch reports it Parked without running the handler.
func TestProcessBatchParks(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		const c = "batch-park"
		ib := newInbox(t, db, c, inbox.Config{MaxAttempts: 1})
		ds := []inbox.Delivery{{Key: "poison", Payload: []byte("p")}, {Key: "fine", Payload: []byte("p")}}
		write := batchEffect(db, c)
		h := func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
			if err := write(ctx, tx, d); err != nil {
				return err
			}
			if d.Key == "poison" {
				return errors.New("poison")
			}
			return nil
		}
		res := ib.ProcessBatch(ctx, ds, h)
		if res[0].Result != inbox.Parked || res[0].Err != nil || res[1].Result != inbox.Processed || res[1].Err != nil {
			t.Fatalf("results %+v, want parked and processed", res)
		}
		res = ib.ProcessBatch(ctx, ds, func(context.Context, *sqlx.Tx, inbox.Delivery) error {
			t.Error("handler ran for a parked or processed key")
			return nil
		})
		if res[0].Result != inbox.Parked || res[1].Result != inbox.Duplicate {
			t.Fatalf("second batch %+v, want parked and duplicate", res)
		}
		if n := effects(t, db, c, "poison"); n != 0 {
			t.Errorf("the parked message left %d effects", n)
		}
		dead, err := ib.ListDead(ctx, inbox.DeadFilter{})
		if err != nil || len(dead) != 1 || dead[0].Delivery.Key != "poison" {
			t.Fatalf("dead letters %+v, %v; want poison", dead, err)
		}
	})
}

// The volume test: 2,000 keys × 3 deliveries taken in batches of up to 32 by 8 workers, 10% of the
// keys failing their first handler run and redelivered until they succeed: exactly one effect per key. The
// copies of a key sit close together in the queue, so that concurrent batches share keys (and wait for each
// other on them) and a batch often holds two copies of one key.
func TestProcessBatchManyKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("6,000 deliveries per database")
	}
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		const c, keys, copies, workers, size = "batch-volume", 2000, 3, 8, 32
		ib := newInbox(t, db, c, inbox.Config{})
		queue := make(chan inbox.Delivery, keys*copies)
		for k := range keys {
			for range copies {
				queue <- inbox.Delivery{Key: inbox.Key("order", itoa(k)), Payload: []byte("payload " + itoa(k))}
			}
		}
		failFirst := make([]atomic.Bool, keys)
		for k := 0; k < keys; k += 10 {
			failFirst[k].Store(true)
		}
		var pending sync.WaitGroup
		pending.Add(keys * copies)
		var failures, processed atomic.Int32
		unexpected := make(chan error, 16)
		write := batchEffect(db, c)
		h := func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
			if err := write(ctx, tx, d); err != nil {
				return err
			}
			if failFirst[atoiKey(d.Key)].CompareAndSwap(true, false) {
				failures.Add(1)
				return errors.New("injected failure")
			}
			return nil
		}
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for d := range queue {
					ds := []inbox.Delivery{d}
				fill:
					for len(ds) < size {
						select {
						case d, ok := <-queue:
							if !ok {
								break fill
							}
							ds = append(ds, d)
						default:
							break fill
						}
					}
					for n, r := range ib.ProcessBatch(ctx, ds, h) {
						switch {
						case r.Err != nil && strings.Contains(r.Err.Error(), "injected failure"):
							ds[n].Attempt++
							queue <- ds[n] // the broker redelivers
							continue
						case r.Err != nil:
							select {
							case unexpected <- r.Err:
							default:
							}
						case r.Result == inbox.Processed:
							processed.Add(1)
						}
						pending.Done()
					}
				}
			})
		}
		pending.Wait()
		close(queue)
		wg.Wait()
		checkVolume(t, db, c, keys, unexpected, int(failures.Load()), int(processed.Load()))
	}, testdb.MaxOpenConns(16))
}

// A deadlock inside one handler (a retryable error) rolls back the whole batch and runs it again: the other
// deliveries' handlers run twice, and each effect is committed once.
func TestProcessBatchRetriesTheBatch(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		const c = "batch-retry"
		ib := newInbox(t, db, c, inbox.Config{})
		var deadlocked atomic.Bool
		var runs atomic.Int32
		write := batchEffect(db, c)
		res := ib.ProcessBatch(ctx, []inbox.Delivery{{Key: "a", Payload: []byte("p")}, {Key: "b", Payload: []byte("p")}},
			func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
				runs.Add(1)
				if err := write(ctx, tx, d); err != nil {
					return err
				}
				if d.Key == "b" && deadlocked.CompareAndSwap(false, true) {
					return deadlockError(db)
				}
				return nil
			})
		for n, r := range res {
			if r.Result != inbox.Processed || r.Err != nil {
				t.Errorf("delivery %d: %v, %v; want processed", n, r.Result, r.Err)
			}
		}
		if !errors.Is(deadlockError(db), dialect.ErrRetryable) {
			t.Fatal("the injected error is not retryable")
		}
		if got := runs.Load(); got != 4 {
			t.Errorf("handlers ran %d times, want 4 (both twice)", got)
		}
		for _, key := range []string{"a", "b"} {
			if n := effects(t, db, c, key); n != 1 {
				t.Errorf("effects of %q = %d, want 1", key, n)
			}
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts WHERE consumer = ?", c); n != 0 {
			t.Errorf("a deadlock was counted as a failure (%d attempts rows)", n)
		}
	})
}

// deadlockError is what a driver returns for a deadlock (SQLSTATE 40P01), as the dialect classifies it.
func deadlockError(db *testdb.DB) error { return db.Dialect.InterpretError(sqlStateError("40P01")) }

type sqlStateError string

func (e sqlStateError) Error() string    { return "deadlock detected (SQLSTATE " + string(e) + ")" }
func (e sqlStateError) SQLState() string { return string(e) }

// HandlerTimeout bounds the whole batch: a handler stuck past it has the batch's transaction rolled back, every
// delivery comes back Failed matching ErrHandlerTimeout with nothing committed, and only the stuck one's failure
// is counted.
func TestProcessBatchTimeout(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		const c = "batch-timeout"
		patient := newInbox(t, db, c, inbox.Config{})
		start := time.Now()
		if res, err := patient.Process(ctx, inbox.Delivery{Key: "warm-up"}, effectHandler(db, c, "warm-up")); err != nil || res != inbox.Processed {
			t.Fatalf("warm-up delivery: %v, %v", res, err)
		}
		ib := newInbox(t, db, c, inbox.Config{HandlerTimeout: max(300*time.Millisecond, 20*time.Since(start))})
		ds := []inbox.Delivery{{Key: "c-stuck", Payload: []byte("p")}, {Key: "a-fast", Payload: []byte("p")}, {Key: "b-fast", Payload: []byte("p")}}
		write := batchEffect(db, c)
		res := ib.ProcessBatch(ctx, ds, func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
			if err := write(ctx, tx, d); err != nil {
				return err
			}
			if d.Key == "c-stuck" {
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		})
		for n, r := range res {
			if r.Result != inbox.Failed || !errors.Is(r.Err, inbox.ErrHandlerTimeout) {
				t.Errorf("delivery %q: %v, %v; want Failed matching ErrHandlerTimeout", ds[n].Key, r.Result, r.Err)
			}
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM effects WHERE consumer = ?", c); n != 1 { // the warm-up's
			t.Errorf("%d effects committed, want only the warm-up's", n)
		}
		for key, want := range map[string]int{"c-stuck": 1, "a-fast": 0, "b-fast": 0} {
			if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts WHERE consumer = ? AND msg_key = ?", c, key); n != want {
				t.Errorf("attempts rows of %q = %d, want %d", key, n, want)
			}
		}
		for n, r := range patient.ProcessBatch(ctx, ds, write) {
			if r.Result != inbox.Processed || r.Err != nil {
				t.Errorf("redelivery of %q: %v, %v; want processed", ds[n].Key, r.Result, r.Err)
			}
		}
	})
}
