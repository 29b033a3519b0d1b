package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// The partitioned layout's boundary argument (package doc, "Partitioned retention"), tried deliberately.

// dbNow reads the database's clock.
func dbNow(t testing.TB, db *testdb.DB) time.Time {
	t.Helper()
	at, err := readDBClock(db)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// readDBClock reads the database's clock (for goroutines, which must not call t.Fatal).
func readDBClock(db *testdb.DB) (time.Time, error) {
	q := "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
	if db.Dialect == dialect.MySQL {
		q = "SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%d %H:%i:%s.%f')"
	}
	var s string
	if err := db.QueryRowContext(context.Background(), q).Scan(&s); err != nil {
		return time.Time{}, fmt.Errorf("read the database clock: %w", err)
	}
	at, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse the database clock %q: %w", s, err)
	}
	return at.UTC(), nil
}

// keyBuckets lists the buckets key is recorded in.
func keyBuckets(t testing.TB, db *testdb.DB, consumer, key string) []int64 {
	t.Helper()
	var out []int64
	q := db.Rebind("SELECT bucket FROM txbox_inbox_keys WHERE consumer = ? AND msg_key = ? ORDER BY bucket")
	if err := db.SelectContext(context.Background(), &out, q, consumer, key); err != nil {
		t.Fatalf("buckets of %s: %v", key, err)
	}
	return out
}

// Sixteen deliveries of one key whose claims fall on both sides of a partition boundary, within the claim
// window W of it, all in flight at once (the first one's handler waits until the 15 others are blocked on its
// key): one effect. Each delivery's claim instant is set through the test clock, from B-W to B+W.
func TestBoundaryConcurrentDeliveries(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		const n, c, period = 16, "boundary", time.Hour
		cfg := inbox.Config{HandlerTimeout: time.Minute, ClaimWindow: 2 * time.Minute}
		w := cfg.ClaimWindow
		boundary := dbNow(t, db).Truncate(period).Add(period)
		concurrentDeliveries(t, db, c, inbox.Delivery{Key: "order-9/paid", Payload: []byte("paid")}, func(i int) *inbox.Inbox {
			ib := newInbox(t, db, c, cfg)
			inbox.SetPartitionPeriod(ib, period)
			at := boundary.Add(-w + time.Duration(i)*2*w/n)
			inbox.SetReceivedAt(ib, func() time.Time { return at })
			return ib
		})
	}, testdb.Partitioned(true), testdb.MaxOpenConns(40))
}

// A key processed before a boundary is a duplicate after it, and several partitions later: the claim looks it
// up in every live bucket. A claim far from a boundary records one row; one within W of it records two.
func TestBoundaryRedeliveryLater(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		const c, period = "later", time.Hour
		cfg := inbox.Config{HandlerTimeout: time.Minute, ClaimWindow: 2 * time.Minute}
		boundary := dbNow(t, db).Truncate(period).Add(period)
		deliver := func(key string, at time.Time) (inbox.Result, error) {
			ib := newInbox(t, db, c, cfg)
			inbox.SetPartitionPeriod(ib, period)
			inbox.SetReceivedAt(ib, func() time.Time { return at })
			return ib.Process(ctx, inbox.Delivery{Key: key, Payload: []byte("p")}, effectHandler(db, c, key))
		}
		b := boundary.Unix() / int64(period/time.Second)
		for _, tc := range []struct {
			key     string
			first   time.Time
			buckets []int64
		}{
			{"far", boundary.Add(-3 * cfg.ClaimWindow), []int64{b - 1}},
			{"near", boundary.Add(-cfg.ClaimWindow / 2), []int64{b - 1, b}},
		} {
			if res, err := deliver(tc.key, tc.first); err != nil || res != inbox.Processed {
				t.Fatalf("%s: first delivery %v, %v", tc.key, res, err)
			}
			if got := keyBuckets(t, db, c, tc.key); fmt.Sprint(got) != fmt.Sprint(tc.buckets) {
				t.Errorf("%s recorded in buckets %v, want %v", tc.key, got, tc.buckets)
			}
			for _, later := range []time.Duration{time.Millisecond, period, 5 * period, 6 * 24 * time.Hour} {
				if res, err := deliver(tc.key, boundary.Add(later)); err != nil || res != inbox.Duplicate {
					t.Errorf("%s redelivered %s after the boundary: %v, %v; want duplicate", tc.key, later, res, err)
				}
			}
			if e := effects(t, db, c, tc.key); e != 1 {
				t.Errorf("%s: %d effects, want 1", tc.key, e)
			}
		}
	}, testdb.Partitioned(true))
}

// The same with the database's real clock and a period of one second: sixteen deliveries started over about
// two and a half periods, each handler holding its transaction until the database's clock has crossed into the
// next partition. Whatever the timing, the key has at most one effect, and a last delivery settles it.
func TestBoundaryRealClock(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		createEffects(t, db)
		ctx := context.Background()
		const n, c = 16, "realclock"
		// W covers the handler's wait for the next second plus the machine's slowness; the claim records the
		// key in every bucket of the window (a few rows with a period this short).
		cfg := inbox.Config{HandlerTimeout: 10 * time.Second, ClaimWindow: 15 * time.Second}
		ib := newInbox(t, db, c, cfg)
		inbox.SetPartitionPeriod(ib, time.Second)
		d := inbox.Delivery{Key: "order-3/paid", Payload: []byte("paid")}
		var ran atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for range n {
			<-tick.C
			wg.Go(func() {
				_, err := ib.Process(ctx, d, func(ctx context.Context, tx *sqlx.Tx) error {
					ran.Add(1)
					start, err := readDBClock(db)
					for err == nil {
						var now time.Time
						if now, err = readDBClock(db); err == nil && now.Truncate(time.Second).After(start.Truncate(time.Second)) {
							break
						}
						if ctx.Err() != nil {
							return ctx.Err()
						}
						time.Sleep(20 * time.Millisecond) // polling the database's clock
					}
					if err != nil {
						return err
					}
					return effectHandler(db, c, d.Key)(ctx, tx)
				})
				if err != nil && !errors.Is(err, inbox.ErrHandlerTimeout) {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("delivery: %v", err)
		}
		if e := effects(t, db, c, d.Key); e > 1 {
			t.Fatalf("%d effects after %d handler runs, want at most 1", e, ran.Load())
		}
		if _, err := ib.Process(ctx, d, effectHandler(db, c, d.Key)); err != nil {
			t.Fatalf("last delivery: %v", err)
		}
		if e := effects(t, db, c, d.Key); e != 1 {
			t.Errorf("%d effects, want 1", e)
		}
	}, testdb.Partitioned(true), testdb.MaxOpenConns(40))
}
