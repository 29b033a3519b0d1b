package inbox_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// Invariant 1, sequentially: the first delivery runs, a redelivery is skipped; a failed or panicking handler
// leaves nothing behind and the next delivery runs.
func TestProcessOnceThenDuplicate(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) { processScenario(t, db) })
}

// A DSN with clientFoundRows=true changes what MySQL reports as rows affected by upserts; the inbox must not
// care. The whole scenario, concurrency and parking included, runs again with it.
func TestClientFoundRowsChangesNothing(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		processScenario(t, db)
		concurrentScenario(t, db, "cfr-concurrent")
		poisonScenario(t, db, "cfr-poison")
	}, testdb.MySQLParams(map[string]string{"clientFoundRows": "true"}))
}

func processScenario(t *testing.T, db *testdb.DB) {
	ctx := context.Background()
	createEffects(t, db)
	const c = "orders"
	ib := newInbox(t, db, c, inbox.Config{})
	d := inbox.Delivery{Key: inbox.Key("12345", "payment"), Payload: []byte(`{"amount":42}`)}

	res, err := ib.Process(ctx, d, effectHandler(db, c, d.Key))
	if err != nil || res != inbox.Processed {
		t.Fatalf("first delivery: %v, %v; want processed", res, err)
	}
	ran := false
	res, err = ib.Process(ctx, d, func(context.Context, *sqlx.Tx) error { ran = true; return nil })
	if err != nil || res != inbox.Duplicate || ran {
		t.Fatalf("redelivery: %v, %v, handler ran %v; want duplicate without running", res, err, ran)
	}
	if n := effects(t, db, c, d.Key); n != 1 {
		t.Fatalf("effects after two deliveries = %d, want 1", n)
	}

	// A failing handler rolls back its writes and the key.
	boom := errors.New("boom")
	fk := inbox.Delivery{Key: "fails-once", Payload: []byte("x")}
	res, err = ib.Process(ctx, fk, func(ctx context.Context, tx *sqlx.Tx) error {
		if err := effectHandler(db, c, fk.Key)(ctx, tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || res != inbox.Failed {
		t.Fatalf("failing handler: %v, %v; want Failed wrapping boom", res, err)
	}
	if n := effects(t, db, c, fk.Key); n != 0 {
		t.Fatalf("failed handler left %d effects", n)
	}
	fk.Attempt = 1
	if res, err := ib.Process(ctx, fk, effectHandler(db, c, fk.Key)); err != nil || res != inbox.Processed {
		t.Fatalf("redelivery after failure: %v, %v; want processed", res, err)
	}
	if n := effects(t, db, c, fk.Key); n != 1 {
		t.Fatalf("effects after failure + success = %d, want 1", n)
	}
	// The success of a redelivery (Attempt > 0) cleared the failure counter in its transaction.
	if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox_attempts WHERE consumer = ? AND msg_key = ?", c, fk.Key); n != 0 {
		t.Fatalf("attempts row left after a successful redelivery: %d", n)
	}

	// A panicking handler is converted to an error and rolled back; the next delivery runs.
	pk := inbox.Delivery{Key: "panics-once", Payload: []byte("y")}
	res, err = ib.Process(ctx, pk, func(ctx context.Context, tx *sqlx.Tx) error {
		if err := effectHandler(db, c, pk.Key)(ctx, tx); err != nil {
			return err
		}
		panic("handler bug")
	})
	var pe *inbox.PanicError
	if res != inbox.Failed || !errors.Is(err, inbox.ErrHandlerPanic) || !errors.As(err, &pe) || pe.Value != "handler bug" || len(pe.Stack) == 0 {
		t.Fatalf("panicking handler: %v, %v; want Failed with a *PanicError", res, err)
	}
	if res, err := ib.Process(ctx, pk, effectHandler(db, c, pk.Key)); err != nil || res != inbox.Processed {
		t.Fatalf("redelivery after panic: %v, %v; want processed", res, err)
	}
	if n := effects(t, db, c, pk.Key); n != 1 {
		t.Fatalf("effects after panic + success = %d, want 1", n)
	}
}

// Invariant 1, concurrently: 16 deliveries of one key at once commit the handler once. The first delivery's
// handler waits until the 15 others are blocked on its key, so the overlap is real, not a matter of timing.
func TestConcurrentDeliveriesOfOneKey(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		concurrentScenario(t, db, "concurrent")
	}, testdb.MaxOpenConns(40))
}

func concurrentScenario(t *testing.T, db *testdb.DB, c string) {
	ib := newInbox(t, db, c, inbox.Config{})
	concurrentDeliveries(t, db, c, inbox.Delivery{Key: "order-7/paid", Payload: []byte("paid")},
		func(int) *inbox.Inbox { return ib })
}

// concurrentDeliveries delivers d 16 times at once, delivery i through inboxFor(i), the first handler waiting
// until the 15 others are blocked on its key, and checks that exactly one ran and committed its effect.
func concurrentDeliveries(t *testing.T, db *testdb.DB, c string, d inbox.Delivery, inboxFor func(i int) *inbox.Inbox) {
	if countRows(t, db, "SELECT COUNT(*) FROM effects WHERE 1 = 0") != 0 {
		t.Fatal("effects table missing")
	}
	ctx := context.Background()
	const n = 16
	var ran atomic.Int32
	results := make(chan inbox.Result, n)
	errs := make(chan error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		ib := inboxFor(i)
		wg.Go(func() {
			<-start
			res, err := ib.Process(ctx, d, func(ctx context.Context, tx *sqlx.Tx) error {
				if ran.Add(1) == 1 {
					if err := waitBlockedOnMe(ctx, db, tx, n-1); err != nil {
						return err
					}
				}
				return effectHandler(db, c, d.Key)(ctx, tx)
			})
			results <- res
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent delivery: %v", err)
		}
	}
	counts := map[inbox.Result]int{}
	for r := range results {
		counts[r]++
	}
	if counts[inbox.Processed] != 1 || counts[inbox.Duplicate] != n-1 {
		t.Errorf("results %v, want 1 processed and %d duplicates", counts, n-1)
	}
	if got := ran.Load(); got != 1 {
		t.Errorf("handler ran %d times, want 1", got)
	}
	if e := effects(t, db, c, d.Key); e != 1 {
		t.Errorf("effects = %d, want 1", e)
	}
}

// When the first delivery rolls back while others wait on its key, exactly one of the waiters runs.
func TestWaitersRunAfterRollback(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		const c, n = "rollback", 4
		ib := newInbox(t, db, c, inbox.Config{})
		d := inbox.Delivery{Key: "k", Payload: []byte("p")}
		var calls atomic.Int32
		fail := errors.New("first delivery fails")
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() {
				_, err := ib.Process(ctx, d, func(ctx context.Context, tx *sqlx.Tx) error {
					if calls.Add(1) == 1 {
						if err := waitBlockedOnMe(ctx, db, tx, n-1); err != nil {
							return err
						}
						return fail
					}
					return effectHandler(db, c, d.Key)(ctx, tx)
				})
				if err != nil && !errors.Is(err, fail) {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("delivery: %v", err)
		}
		if e := effects(t, db, c, d.Key); e != 1 {
			t.Errorf("effects = %d, want 1 (one waiter runs after the first rolls back)", e)
		}
		if got := calls.Load(); got != 2 {
			t.Errorf("handler ran %d times, want 2 (the failing first one and one waiter)", got)
		}
	}, testdb.MaxOpenConns(20))
}

// Invariant 1 at volume: 2,000 keys × 3 deliveries from 8 workers, 10% of first attempts failing and retried
// until they succeed: exactly one effect per key, none missing.
func TestManyKeysManyWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("6,000 deliveries per database")
	}
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		const c, keys, copies, workers = "volume", 2000, 3, 8
		ib := newInbox(t, db, c, inbox.Config{})

		queue := make(chan inbox.Delivery, keys*copies)
		// Deliveries of one key are close together in the queue, so they often run at the same time.
		for k := range keys {
			for range copies {
				queue <- inbox.Delivery{Key: inbox.Key("order", itoa(k)), Payload: []byte("payload " + itoa(k))}
			}
		}
		failFirst := make([]atomic.Bool, keys) // keys whose first handler run fails
		for k := 0; k < keys; k += 10 {
			failFirst[k].Store(true)
		}
		var pending sync.WaitGroup
		pending.Add(keys * copies)
		var failures, processed atomic.Int32
		unexpected := make(chan error, 16)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for d := range queue {
					k := atoiKey(d.Key)
					res, err := ib.Process(ctx, d, func(ctx context.Context, tx *sqlx.Tx) error {
						if err := effectHandler(db, c, d.Key)(ctx, tx); err != nil {
							return err
						}
						if failFirst[k].CompareAndSwap(true, false) {
							failures.Add(1)
							return errors.New("injected failure")
						}
						return nil
					})
					switch {
					case err != nil && strings.Contains(err.Error(), "injected failure"):
						d.Attempt++
						queue <- d // the broker redelivers
						continue
					case err != nil:
						select {
						case unexpected <- err:
						default:
						}
					case res == inbox.Processed:
						processed.Add(1)
					}
					pending.Done()
				}
			})
		}
		pending.Wait()
		close(queue)
		wg.Wait()
		checkVolume(t, db, c, keys, unexpected, int(failures.Load()), int(processed.Load()))
	}, testdb.MaxOpenConns(16))
}

// Invariant 2: keys are compared byte for byte, and scoped by consumer.
func TestKeysAreByteExactAndScoped(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		a := newInbox(t, db, "consumer-a", inbox.Config{})
		for _, k := range []string{"k", "K", "k ", " k", "é", "e\u0301"} {
			d := inbox.Delivery{Key: k, Payload: []byte("same")}
			if res, err := a.Process(ctx, d, effectHandler(db, "consumer-a", k)); err != nil || res != inbox.Processed {
				t.Errorf("key %q: %v, %v; want processed (a distinct key)", k, res, err)
			}
		}
		for _, k := range []string{"k", "K", "k "} {
			if n := effects(t, db, "consumer-a", k); n != 1 {
				t.Errorf("key %q has %d effects, want 1", k, n)
			}
			d := inbox.Delivery{Key: k, Payload: []byte("same")}
			if res, err := a.Process(ctx, d, effectHandler(db, "consumer-a", k)); err != nil || res != inbox.Duplicate {
				t.Errorf("key %q again: %v, %v; want duplicate", k, res, err)
			}
		}
		// The same key under another consumer is another effect.
		b := newInbox(t, db, "consumer-b", inbox.Config{})
		if res, err := b.Process(ctx, inbox.Delivery{Key: "k", Payload: []byte("same")}, effectHandler(db, "consumer-b", "k")); err != nil || res != inbox.Processed {
			t.Errorf("key k for consumer-b: %v, %v; want processed", res, err)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM effects WHERE k = ?", "k"); n != 2 {
			t.Errorf("key k has %d effects across two consumers, want 2", n)
		}
	})
}

// Invariant 2: a key that does not fit is an error before any SQL, never truncated, also when MySQL runs
// without strict mode (where it would truncate silently).
func TestInvalidKeysAreErrors(t *testing.T) {
	body := func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		ib := newInbox(t, db, "c", inbox.Config{})
		long := strings.Repeat("x", dialect.MaxKeyBytes)
		ran := false
		h := func(context.Context, *sqlx.Tx) error { ran = true; return nil }
		for name, k := range map[string]string{
			"empty": "", "one byte too long": long + "y", "invalid UTF-8": "k\xff", "NUL": "k\x00",
			"multi-byte over the limit": strings.Repeat("é", dialect.MaxKeyBytes/2) + "x",
		} {
			res, err := ib.Process(ctx, inbox.Delivery{Key: k}, h)
			if res != inbox.Failed || !errors.Is(err, inbox.ErrInvalidDelivery) || !errors.Is(err, dialect.ErrInvalidKey) {
				t.Errorf("%s key: %v, %v; want Failed matching ErrInvalidDelivery and dialect.ErrInvalidKey", name, res, err)
			}
		}
		if ran {
			t.Error("handler ran for an invalid key")
		}
		// The longest valid keys fit exactly, and a key that extends one of them is a different key.
		for _, k := range []string{long, strings.Repeat("😀", dialect.MaxKeyBytes/4)} {
			if res, err := ib.Process(ctx, inbox.Delivery{Key: k}, effectHandler(db, "c", k)); err != nil || res != inbox.Processed {
				t.Errorf("key of %d bytes: %v, %v; want processed", len(k), res, err)
			}
			if n := countKeys(t, db, "msg_key = ?", k); n != 1 {
				t.Errorf("key of %d bytes stored %d times (truncated?)", len(k), n)
			}
		}
		if res, err := ib.Process(ctx, inbox.Delivery{Key: long[:len(long)-1]}, effectHandler(db, "c", "short")); err != nil || res != inbox.Processed {
			t.Errorf("key one byte shorter than a recorded one: %v, %v; want processed", res, err)
		}
		if n := countKeys(t, db, "1 = 1"); n != 3 {
			t.Errorf("%d keys recorded, want 3", n)
		}
	}
	t.Run("strict", func(t *testing.T) { testdb.RunLayouts(t, body) })
	t.Run("mysql-non-strict", func(t *testing.T) {
		testdb.RunLayouts(t, body, testdb.MySQLParams(map[string]string{"sql_mode": "''"}))
	})
}

// Invariant 3: the same key with another payload is its own error, not a duplicate.
func TestFingerprintMismatch(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		ib := newInbox(t, db, "c", inbox.Config{})
		d := inbox.Delivery{Key: "order-1/created", Payload: []byte(`{"total":10}`)}
		if res, err := ib.Process(ctx, d, effectHandler(db, "c", d.Key)); err != nil || res != inbox.Processed {
			t.Fatalf("first: %v, %v", res, err)
		}
		other := d
		other.Payload = []byte(`{"total":11}`)
		ran := false
		res, err := ib.Process(ctx, other, func(context.Context, *sqlx.Tx) error { ran = true; return nil })
		var fm *inbox.FingerprintMismatchError
		if res != inbox.Failed || !errors.Is(err, inbox.ErrFingerprintMismatch) || !errors.As(err, &fm) || fm.Key != d.Key || ran {
			t.Fatalf("other payload: %v, %v, ran %v; want Failed with *FingerprintMismatchError", res, err, ran)
		}
		// Headers are not part of the fingerprint: a redelivery with new broker headers is a duplicate.
		d.Headers = map[string]string{"RECONSUME_TIME": "3"}
		if res, err := ib.Process(ctx, d, effectHandler(db, "c", d.Key)); err != nil || res != inbox.Duplicate {
			t.Fatalf("same payload, other headers: %v, %v; want duplicate", res, err)
		}
		// An empty payload is a payload: its fingerprint is recorded and compared too.
		e := inbox.Delivery{Key: "empty"}
		if res, err := ib.Process(ctx, e, effectHandler(db, "c", e.Key)); err != nil || res != inbox.Processed {
			t.Fatalf("empty payload: %v, %v", res, err)
		}
		e.Payload = []byte("not empty")
		if _, err := ib.Process(ctx, e, effectHandler(db, "c", e.Key)); !errors.Is(err, inbox.ErrFingerprintMismatch) {
			t.Fatalf("non-empty after empty payload: %v; want ErrFingerprintMismatch", err)
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoiKey(key string) int {
	parts, err := inbox.SplitKey(key)
	if err != nil || len(parts) != 2 {
		panic("bad test key " + key)
	}
	n := 0
	for _, c := range parts[1] {
		n = n*10 + int(c-'0')
	}
	return n
}

// checkVolume checks the end of a volume test of consumer c: no unexpected error, one injected failure per tenth
// key, every key processed once, with exactly one effect and one recorded key each.
func checkVolume(t *testing.T, db *testdb.DB, c string, keys int, unexpected chan error, failures, processed int) {
	t.Helper()
	close(unexpected)
	for err := range unexpected {
		t.Errorf("delivery failed: %v", err)
	}
	if failures != keys/10 {
		t.Errorf("injected %d failures, want %d", failures, keys/10)
	}
	if processed != keys {
		t.Errorf("%d deliveries processed, want %d", processed, keys)
	}
	for q, what := range map[string]string{
		"SELECT COUNT(*) FROM effects WHERE consumer = ?":          "effect rows",
		"SELECT COUNT(DISTINCT k) FROM effects WHERE consumer = ?": "keys with an effect",
	} {
		if n := countRows(t, db, q, c); n != keys {
			t.Errorf("%d %s, want %d", n, what, keys)
		}
	}
	if n := countKeys(t, db, "consumer = ?", c); n != keys { // either layout
		t.Errorf("%d recorded keys, want %d", n, keys)
	}
}
