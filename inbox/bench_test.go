package inbox_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// BenchmarkProcess compares Process with an upsert handler against the same upsert in a bare transaction
// (the raw baseline: what a consumer without an inbox does), on every database and driver in one run:
// b.N messages per mode, 4 workers, 10% of messages redeliver an earlier key. It reports raw-msg/s,
// inbox-msg/s and inbox/raw (target ≥ 0.85), and two yardsticks: raw1 is the raw transaction plus one
// trivial statement (SELECT 1), what any extra round trip costs on this machine; hand is the raw transaction
// plus a hand-rolled dedup row (a plain INSERT into txbox_inbox, duplicate-key error → skip), what a
// consumer writing its own dedup costs. The modes run interleaved in ten rounds on the same database so that
// background load hits them alike. Run:
//
//	go test -run '^$' -bench BenchmarkProcess -benchtime 4000x -count 5 ./inbox/
func BenchmarkProcess(b *testing.B) {
	for _, bt := range []struct {
		name string
		tg   testdb.Target
		opts []testdb.Option
	}{
		{"mariadb", testdb.Targets[0], nil},
		{"mariadb-interpolate", testdb.Targets[0], []testdb.Option{testdb.MySQLParams(map[string]string{"interpolateParams": "true"})}},
		{"postgres-pq", testdb.Targets[1], nil},
		{"postgres-pgx", testdb.Targets[2], nil},
	} {
		b.Run(bt.name, func(b *testing.B) {
			db := testdb.Open(b, bt.tg, bt.opts...)
			b.Logf("driver %s, DSN %s", bt.tg.Driver, redactDSN(db.DSN))
			benchProcess(b, db)
		})
	}
}

const benchWorkers = 4

func benchProcess(b *testing.B, db *testdb.DB) {
	ctx := context.Background()
	for _, table := range []string{"bench_raw", "bench_raw1", "bench_hand", "bench_inbox"} {
		ddl := "CREATE TABLE " + table + " (order_id VARCHAR(64) PRIMARY KEY, amount BIGINT NOT NULL, status VARCHAR(16) NOT NULL)"
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			b.Fatal(err)
		}
	}
	ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if db.Partitioned { // TXBOX_TEST_LAYOUT=partitioned: the live partitions a week of keys has, made ahead
		if _, err := ib.Purge(ctx); err != nil {
			b.Fatal(err)
		}
	}
	upsert := func(table string) dialect.Upsert {
		return dialect.Upsert{Table: table, Columns: []string{"order_id", "amount", "status"},
			Conflict: []string{"order_id"}, Update: []string{"amount", "status"}}
	}
	rawUpsert, raw1Upsert, handUpsert, inboxUpsert := upsert("bench_raw"), upsert("bench_raw1"), upsert("bench_hand"), upsert("bench_inbox")

	// Message i is order i, except every tenth, which redelivers the order five messages earlier.
	orders := make([]int, b.N)
	for i := range orders {
		orders[i] = i
		if i%10 == 9 {
			orders[i] = i - 5
		}
	}
	raw := func(ctx context.Context, order int) error {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := rawUpsert.Exec(ctx, tx, db.Dialect, fmt.Sprint(order), int64(order), "paid"); err != nil {
			return err
		}
		return tx.Commit()
	}
	raw1 := func(ctx context.Context, order int) error {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
			return err
		}
		if _, err := raw1Upsert.Exec(ctx, tx, db.Dialect, fmt.Sprint(order), int64(order), "paid"); err != nil {
			return err
		}
		return tx.Commit()
	}
	handIns := db.Rebind("INSERT INTO txbox_inbox (consumer, msg_key, fingerprint, received_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP)")
	hand := func(ctx context.Context, order int) error {
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		sum := sha256.Sum256([]byte(fmt.Sprintf(`{"amount":%d}`, order)))
		if _, err := tx.ExecContext(ctx, handIns, "hand", inbox.Key(fmt.Sprint(order), "payment"), sum[:]); err != nil {
			if dialect.Classify(err) == dialect.KindDuplicateKey {
				return nil // a duplicate (and on PostgreSQL the transaction is aborted anyway)
			}
			return err
		}
		if _, err := handUpsert.Exec(ctx, tx, db.Dialect, fmt.Sprint(order), int64(order), "paid"); err != nil {
			return err
		}
		return tx.Commit()
	}
	viaInbox := func(ctx context.Context, order int) error {
		d := inbox.Delivery{Key: inbox.Key(fmt.Sprint(order), "payment"), Payload: []byte(fmt.Sprintf(`{"amount":%d}`, order))}
		_, err := ib.Process(ctx, d, func(ctx context.Context, tx *sqlx.Tx) error {
			_, err := inboxUpsert.Exec(ctx, tx, db.Dialect, fmt.Sprint(order), int64(order), "paid")
			return err
		})
		return err
	}
	run := func(part []int, f func(context.Context, int) error) time.Duration {
		return runWorkers(ctx, b, part, f)
	}

	b.ResetTimer()
	var rawTime, raw1Time, handTime, inboxTime time.Duration
	const rounds = 10
	for r := range rounds {
		part := orders[r*len(orders)/rounds : (r+1)*len(orders)/rounds]
		rawTime += run(part, raw)
		inboxTime += run(part, viaInbox)
		raw1Time += run(part, raw1)
		handTime += run(part, hand)
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(b.N) / d.Seconds() }
	b.ReportMetric(rate(rawTime), "raw-msg/s")
	b.ReportMetric(rate(inboxTime), "inbox-msg/s")
	b.ReportMetric(rate(raw1Time), "raw1-msg/s")
	b.ReportMetric(rate(inboxTime)/rate(rawTime), "inbox/raw")
	b.ReportMetric(rate(handTime), "hand-msg/s")
	b.ReportMetric(rate(raw1Time)/rate(rawTime), "raw1/raw")
	b.ReportMetric(rate(handTime)/rate(rawTime), "hand/raw")
}

// redactDSN hides the password of a DSN for the benchmark's output.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	if cfg, err := mysql.ParseDSN(dsn); err == nil {
		cfg.Passwd = ""
		return cfg.FormatDSN()
	}
	return "<dsn>"
}

// runWorkers calls f for every element of part from benchWorkers goroutines and returns the wall time.
func runWorkers(ctx context.Context, b *testing.B, part []int, f func(context.Context, int) error) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range benchWorkers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(part)) {
					return
				}
				if err := f(ctx, part[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
