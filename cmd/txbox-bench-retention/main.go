package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/migrations"
)

var (
	keys       = flag.Int("keys", 20_000_000, "keys loaded over the 7 simulated days")
	rounds     = flag.Int("rounds", 3, "Process runs per figure (median, min–max)")
	deliveries = flag.Int("deliveries", 4000, "deliveries per Process run")
	workers    = flag.Int("workers", 4, "concurrent Process callers")
	only       = flag.String("only", "", "mysql or postgres: one database only")
	layouts    = flag.String("layouts", "unpartitioned,partitioned", "layouts to measure")
)

const (
	day       = 24 * time.Hour
	retention = 7 * day
	days      = 7
	chunk     = 1_000_000 // rows per INSERT ... SELECT
)

type target struct {
	name, driver, dsn, options string
	d                          dialect.Dialect
}

// figure is a median with its min and max.
type figure struct{ med, lo, hi float64 }

func (f figure) String(unit string) string {
	return fmt.Sprintf("%.0f%s (%.0f–%.0f)", f.med, unit, f.lo, f.hi)
}

func summarize(xs []float64) figure {
	s := slices.Clone(xs)
	slices.Sort(s)
	return figure{s[len(s)/2], s[0], s[len(s)-1]}
}

// report is one layout's figures on one database.
type report struct {
	db, layout         string
	rate, p99          [3]figure // at 0, half, all keys
	purge              time.Duration
	purged             int64
	p99During          float64
	tableMB, indexMB   float64
	load, loadedPerSec float64
}

func main() {
	flag.Parse()
	var targets []target
	if dsn := os.Getenv("TXBOX_MYSQL_DSN"); dsn != "" && *only != "postgres" {
		targets = append(targets, target{"mariadb", "mysql", dsn, "go-sql-driver/mysql, interpolateParams=true", dialect.MySQL})
	}
	if dsn := os.Getenv("TXBOX_POSTGRES_DSN"); dsn != "" && *only != "mysql" {
		targets = append(targets, target{"postgres", "pgx", dsn, "pgx/v5 stdlib", dialect.Postgres})
	}
	if len(targets) == 0 {
		fmt.Fprintln(os.Stderr, "set TXBOX_MYSQL_DSN and/or TXBOX_POSTGRES_DSN (eval \"$(scripts/services.sh env)\")")
		os.Exit(2)
	}
	var all []report
	for _, tg := range targets {
		for _, l := range strings.Split(*layouts, ",") {
			fmt.Fprintf(os.Stderr, "== %s, %s (%s)\n", tg.name, l, tg.options)
			r, err := run(tg, l == "partitioned")
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s %s: %v\n", tg.name, l, err)
				os.Exit(1)
			}
			r.db, r.layout = tg.name, l
			all = append(all, r)
		}
	}
	printReport(all)
}

func printReport(all []report) {
	fmt.Printf("\n%d keys over %d days (%d a day), Retention 7d; Process: %d workers, %d deliveries a run, median (min–max) of %d runs\n",
		*keys, days, *keys/days, *workers, *deliveries, *rounds)
	fmt.Printf("\n%-9s %-13s %-22s %-22s %-22s %-14s %-14s %-14s\n", "db", "layout", "msg/s empty", "msg/s half", "msg/s full",
		"p99 empty", "p99 full", "full/empty")
	for _, r := range all {
		fmt.Printf("%-9s %-13s %-22s %-22s %-22s %-14s %-14s %.2f\n", r.db, r.layout, r.rate[0].String(""), r.rate[1].String(""),
			r.rate[2].String(""), fmt.Sprintf("%.1f ms", r.p99[0].med), fmt.Sprintf("%.1f ms", r.p99[2].med), r.rate[2].med/r.rate[0].med)
	}
	fmt.Printf("\n%-9s %-13s %-12s %-12s %-18s %-16s %-10s %-10s %s\n", "db", "layout", "purge 1 day", "keys", "p99 during purge",
		"during/quiet p99", "table MB", "index MB", "load keys/s")
	for _, r := range all {
		fmt.Printf("%-9s %-13s %-12s %-12d %-18s %-16.2f %-10.0f %-10.0f %.0f\n", r.db, r.layout, r.purge.Round(time.Millisecond),
			r.purged, fmt.Sprintf("%.1f ms", r.p99During), r.p99During/r.p99[2].med, r.tableMB, r.indexMB, r.loadedPerSec)
	}
	fmt.Println("\ntargets: full/empty ≥ 0.90; partitioned purge < 1 s; p99 during purge ≤ 1.5× quiet p99")
}

// open creates a database (MySQL) or schema (PostgreSQL) for one layout, migrated, and returns it with the
// statement that drops it.
func open(ctx context.Context, tg target, partitioned bool) (*sqlx.DB, func(), error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "txbox_retention_" + hex.EncodeToString(b)
	var dsn string
	create, drop := "CREATE SCHEMA "+name, "DROP SCHEMA "+name+" CASCADE"
	if tg.d == dialect.MySQL {
		cfg, err := mysql.ParseDSN(tg.dsn)
		if err != nil {
			return nil, nil, err
		}
		cfg.DBName, cfg.InterpolateParams = name, true
		dsn, create, drop = cfg.FormatDSN(), "CREATE DATABASE "+name, "DROP DATABASE "+name
	} else {
		u, err := url.Parse(tg.dsn)
		if err != nil {
			return nil, nil, err
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	admin, err := sql.Open(tg.driver, tg.dsn)
	if err != nil {
		return nil, nil, err
	}
	if _, err := admin.ExecContext(ctx, create); err != nil {
		_ = admin.Close()
		return nil, nil, err
	}
	cleanup := func() {
		_, _ = admin.ExecContext(context.Background(), drop)
		_ = admin.Close()
	}
	db, err := sqlx.Open(tg.driver, dsn)
	if err == nil {
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(32)
		err = migrations.Up(ctx, db.DB, tg.d, migrations.WithPartitioned(partitioned))
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return db, func() { _ = db.Close(); cleanup() }, nil
}

func run(tg target, partitioned bool) (report, error) {
	ctx := context.Background()
	var r report
	db, cleanup, err := open(ctx, tg, partitioned)
	if err != nil {
		return r, err
	}
	defer cleanup()
	s, err := store.New(tg.d, mustTables())
	if err != nil {
		return r, err
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE bench_orders (order_id VARCHAR(64) PRIMARY KEY, status VARCHAR(16) NOT NULL)"); err != nil {
		return r, err
	}
	st, err := s.PartitionDeclare(ctx, db, store.InboxKeysTable, day, retention)
	if err != nil && partitioned {
		return r, err
	}
	now := st.Now
	if !partitioned {
		if now, err = dbNow(ctx, db, tg.d); err != nil {
			return r, err
		}
	}
	cur := store.BucketOf(now, day)
	first := cur - days - 1 // the simulated days are cur-8 .. cur-2; cur-8 is the one to purge
	if partitioned {
		conn, err := db.Conn(ctx)
		if err != nil {
			return r, err
		}
		var cuts []int64
		for b := first; b <= cur+3; b++ {
			cuts = append(cuts, b)
		}
		err = s.PartitionCreate(ctx, conn, store.InboxKeysTable, day, cuts)
		_ = conn.Close()
		if err != nil {
			return r, err
		}
	}
	ib, err := inbox.New(db, inbox.Config{Dialect: tg.d, Consumer: "bench", PurgeBatchSize: inbox.MaxPurgeBatchSize,
		// Unpartitioned: purge exactly the oldest day (the keys before the start of the next one).
		Retention: now.Sub(store.BucketStart(first+1, day))})
	if err != nil {
		return r, err
	}
	measure := func(i int) error {
		rates, p99s := make([]float64, *rounds), make([]float64, *rounds)
		for k := range *rounds {
			rate, lat, err := processRun(ctx, db, tg.d, ib, fmt.Sprintf("m%d-%d", i, k), *deliveries)
			if err != nil {
				return err
			}
			rates[k], p99s[k] = rate, pct(lat, 99)
		}
		r.rate[i], r.p99[i] = summarize(rates), summarize(p99s)
		fmt.Fprintf(os.Stderr, "  %d keys: %s msg/s, p99 %.1f ms\n", i*(*keys)/2, r.rate[i].String(""), r.p99[i].med)
		return nil
	}
	if err := measure(0); err != nil {
		return r, err
	}
	start := time.Now()
	perDay := *keys / days
	for d := range days {
		if d == days/2+1 {
			r.load += time.Since(start).Seconds()
			if err := analyze(ctx, db, tg.d, partitioned); err != nil {
				return r, err
			}
			if err := measure(1); err != nil {
				return r, err
			}
			start = time.Now()
		}
		if err := loadDay(ctx, db, tg.d, partitioned, first+int64(d), d*perDay, perDay); err != nil {
			return r, err
		}
		fmt.Fprintf(os.Stderr, "  loaded day %d (%d keys)\n", d+1, (d+1)*perDay)
	}
	r.load += time.Since(start).Seconds()
	r.loadedPerSec = float64(days*perDay) / r.load
	if err := analyze(ctx, db, tg.d, partitioned); err != nil {
		return r, err
	}
	if err := measure(2); err != nil {
		return r, err
	}
	if r.purged, err = count(ctx, db, tg.d, partitioned, first); err != nil {
		return r, err
	}
	// Process keeps running while the oldest day is purged.
	stop := make(chan struct{})
	var during []float64
	var derr error
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, lat, err := processRun(ctx, db, tg.d, ib, fmt.Sprintf("p%d", i), 200)
			if err != nil {
				derr = err
				return
			}
			during = append(during, lat...)
		}
	})
	time.Sleep(500 * time.Millisecond) // let the workers reach their pace before the purge starts
	t0 := time.Now()
	_, err = ib.Purge(ctx)
	r.purge = time.Since(t0)
	close(stop)
	wg.Wait()
	if err != nil || derr != nil {
		return r, fmt.Errorf("purge: %v; Process during it: %v", err, derr)
	}
	r.p99During = pct(during, 99)
	if left, err := count(ctx, db, tg.d, partitioned, first); err != nil || left != 0 {
		return r, fmt.Errorf("%d keys of the purged day left (%v)", left, err)
	}
	r.tableMB, r.indexMB, err = sizes(ctx, db, tg.d, partitioned)
	fmt.Fprintf(os.Stderr, "  purge of %d keys: %s, p99 during it %.1f ms\n", r.purged, r.purge.Round(time.Millisecond), r.p99During)
	return r, err
}

func mustTables() dialect.Tables {
	t, _ := dialect.TablesFor("")
	return t
}

// processRun delivers n messages with workers callers: message i is a new order, every tenth a redelivery of
// the order five before it. It returns messages per second and each call's latency in milliseconds.
func processRun(ctx context.Context, db *sqlx.DB, d dialect.Dialect, ib *inbox.Inbox, prefix string, n int) (float64, []float64, error) {
	up := dialect.Upsert{Table: "bench_orders", Columns: []string{"order_id", "status"}, Conflict: []string{"order_id"},
		Update: []string{"status"}}
	jobs := make(chan int)
	lat := make([]float64, n)
	errs := make(chan error, *workers)
	var wg sync.WaitGroup
	start := time.Now()
	for range *workers {
		wg.Go(func() {
			for i := range jobs {
				order := i
				if i%10 == 9 {
					order = i - 5
				}
				key := fmt.Sprintf("%s-order-%d/paid", prefix, order)
				t := time.Now()
				_, err := ib.Process(ctx, inbox.Delivery{Key: key, Payload: []byte("paid")}, func(ctx context.Context, tx *sqlx.Tx) error {
					_, err := up.Exec(ctx, tx, d, key, "paid")
					return err
				})
				lat[i] = float64(time.Since(t).Microseconds()) / 1000
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	el := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, nil, err
	}
	return float64(n) / el.Seconds(), lat, nil
}

func pct(xs []float64, p int) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func dbNow(ctx context.Context, db *sqlx.DB, d dialect.Dialect) (time.Time, error) {
	q := "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
	if d == dialect.MySQL {
		q = "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
	}
	var us int64
	err := db.QueryRowContext(ctx, q).Scan(&us)
	return time.UnixMicro(us).UTC(), err
}

// loadDay inserts n keys of bucket b, numbered from offset, received over the day, in chunks sorted by key.
func loadDay(ctx context.Context, db *sqlx.DB, d dialect.Dialect, partitioned bool, b int64, offset, n int) error {
	startUS := store.BucketStart(b, day).UnixMicro()
	stepUS := day.Microseconds() / int64(n)
	for lo := offset + 1; lo <= offset+n; lo += chunk {
		hi := min(lo+chunk-1, offset+n)
		var q string
		if d == dialect.MySQL {
			cols, vals := "consumer, msg_key, fingerprint, received_at", ""
			if partitioned {
				cols, vals = "consumer, msg_key, bucket, fingerprint, received_at", fmt.Sprintf("%d, ", b)
			}
			table := "txbox_inbox"
			if partitioned {
				table = "txbox_inbox_keys"
			}
			// DATETIME arithmetic from the epoch: UTC whatever the session's time zone.
			q = fmt.Sprintf("INSERT INTO %s (%s) SELECT 'bench', MD5(seq), %sUNHEX(MD5(seq)), "+
				"TIMESTAMP '1970-01-01 00:00:00' + INTERVAL (%d + (seq - %d) * %d) MICROSECOND FROM seq_%d_to_%d ORDER BY 2",
				table, cols, vals, startUS, lo, stepUS, lo, hi)
		} else {
			table, cols, vals := "txbox_inbox", "consumer, msg_key, fingerprint, received_at", ""
			if partitioned {
				table, cols, vals = "txbox_inbox_keys", "consumer, msg_key, bucket, fingerprint, received_at", fmt.Sprintf("%d, ", b)
			}
			q = fmt.Sprintf("INSERT INTO %s (%s) SELECT 'bench', md5(g::text), %sdecode(md5(g::text), 'hex'), "+
				"to_timestamp(0) + (%d + (g - %d) * %d) * interval '1 microsecond' FROM generate_series(%d::bigint, %d) AS g ORDER BY 2",
				table, cols, vals, startUS, lo, stepUS, lo, hi)
		}
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("load bucket %d: %w", b, err)
		}
	}
	return nil
}

func analyze(ctx context.Context, db *sqlx.DB, d dialect.Dialect, partitioned bool) error {
	table := "txbox_inbox"
	if partitioned {
		table = "txbox_inbox_keys"
	}
	q := "ANALYZE " + table
	if d == dialect.MySQL {
		q = "ANALYZE TABLE " + table
	}
	rows, err := db.QueryContext(ctx, q)
	if err == nil {
		err = rows.Close()
	}
	return err
}

// count counts the keys of bucket b (unpartitioned: received in its day).
func count(ctx context.Context, db *sqlx.DB, d dialect.Dialect, partitioned bool, b int64) (int64, error) {
	var n int64
	if partitioned {
		err := db.QueryRowContext(ctx, db.Rebind("SELECT COUNT(*) FROM txbox_inbox_keys WHERE bucket = ?"), b).Scan(&n)
		return n, err
	}
	lo, hi := store.BucketStart(b, day), store.BucketStart(b+1, day)
	args := []any{lo, hi}
	if d == dialect.MySQL {
		args = []any{lo.Format("2006-01-02 15:04:05.999999"), hi.Format("2006-01-02 15:04:05.999999")}
	}
	err := db.QueryRowContext(ctx, db.Rebind("SELECT COUNT(*) FROM txbox_inbox WHERE received_at >= ? AND received_at < ?"), args...).Scan(&n)
	return n, err
}

// sizes returns the keys table's data and index sizes in MB, over all its partitions.
func sizes(ctx context.Context, db *sqlx.DB, d dialect.Dialect, partitioned bool) (float64, float64, error) {
	table := "txbox_inbox"
	if partitioned {
		table = "txbox_inbox_keys"
	}
	var data, index float64
	var err error
	if d == dialect.MySQL {
		if _, err = db.ExecContext(ctx, "ANALYZE TABLE "+table); err != nil {
			return 0, 0, err
		}
		err = db.QueryRowContext(ctx, "SELECT SUM(DATA_LENGTH), SUM(INDEX_LENGTH) FROM information_schema.PARTITIONS "+
			"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?", table).Scan(&data, &index)
	} else if partitioned {
		err = db.QueryRowContext(ctx, "SELECT SUM(pg_table_size(relid)), SUM(pg_indexes_size(relid)) "+
			"FROM pg_partition_tree($1::regclass) WHERE isleaf", table).Scan(&data, &index)
	} else {
		err = db.QueryRowContext(ctx, "SELECT pg_table_size($1::regclass), pg_indexes_size($1::regclass)", table).Scan(&data, &index)
	}
	return data / (1 << 20), index / (1 << 20), err
}
