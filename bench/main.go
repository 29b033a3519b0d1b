// Command bench measures txbox beside the hand-written limit (the same work in plain SQL, no library) and beside
// watermill-sql v4, the library users would pick instead, in one run: each repetition runs every variant of a
// case once, in turn (ABCABC…), on a fresh database per case and column, so that the machine's load hits them
// alike. It prints the servers' durability settings, the drivers and DSN options, medians with min–max, and the
// ratios of medians of per-repetition ratios, with the targets beside them.
//
// It is a module of its own (bench/go.mod) so that watermill never becomes a dependency of the library.
//
//	scripts/bench-services.sh up && eval "$(scripts/bench-services.sh env)" && eval "$(scripts/services.sh env)"
//	cd bench && go run . [-profiles durable,test] [-reps 5] [-parts enqueue,drain,inbox,latency]
//
// Profiles: durable reads TXBOX_BENCH_POSTGRES_DSN and TXBOX_BENCH_MYSQL_DSN (scripts/bench-services.sh:
// fsync and synchronous_commit on, innodb_flush_log_at_trx_commit=1), test reads TXBOX_POSTGRES_DSN and
// TXBOX_MYSQL_DSN (scripts/services.sh: the fast test settings). Columns: PostgreSQL through lib/pq and through
// pgx's database/sql driver, MariaDB through go-sql-driver/mysql without and with interpolateParams.
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
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/migrations"
)

var (
	profiles   = flag.String("profiles", "durable,test", "durable and/or test (see the package documentation)")
	reps       = flag.Int("reps", 5, "repetitions per case; figures are medians")
	parts      = flag.String("parts", "enqueue,drain,inbox,latency", "cases to run")
	cols       = flag.String("columns", "pq,pgx,mariadb,mariadb-ip", "columns to run")
	txs        = flag.Int("txs", 2000, "transactions per enqueue run")
	rows       = flag.Int("rows", 100000, "rows per drain run")
	deliveries = flag.Int("deliveries", 2000, "deliveries per inbox run (10% duplicates)")
	batchSize  = flag.Int("inbox-batch", 32, "deliveries per ProcessBatch call")
	latSeconds = flag.Int("latency-seconds", 10, "duration of the latency run at -rate")
	rate       = flag.Int("rate", 1000, "messages per second in the latency run")
	idle       = flag.Duration("idle", time.Minute, "idle time before the latency run's last message")
	latReps    = flag.Int("latency-reps", 3, "repetitions of the latency run")
	enqStmts   = flag.String("enqueue-statements", "1,3", "business transaction sizes in the enqueue case")
	enqProd    = flag.String("enqueue-producers", "4,8", "producer counts in the enqueue case")
	cpuProfile = flag.String("cpuprofile", "", "write this process's CPU profile to the file")
	yardsticks = flag.Bool("yardsticks", true, "also run the enqueue yardsticks (txbox without NOTIFY, a minimal table)")
)

// column is one database and driver the table has a column for.
type column struct {
	profile                    string
	name, driver, dsn, options string
	d                          dialect.Dialect
}

func main() {
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	// An interrupted run drops the database or schema it was using, as a finished one does.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		dropCurrent()
		os.Exit(130)
	}()
	failed := false
	for _, p := range strings.Split(*profiles, ",") {
		cs, err := columnsOf(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("\n######## profile %s ########\n", p)
		printSettings(cs)
		if !runProfile(cs) {
			failed = true
		}
	}
	if failed {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func columnsOf(profile string) ([]column, error) {
	var pg, my string
	switch profile {
	case "durable":
		pg, my = os.Getenv("TXBOX_BENCH_POSTGRES_DSN"), os.Getenv("TXBOX_BENCH_MYSQL_DSN")
	case "test":
		pg, my = os.Getenv("TXBOX_POSTGRES_DSN"), os.Getenv("TXBOX_MYSQL_DSN")
	default:
		return nil, fmt.Errorf("unknown profile %q (durable or test)", profile)
	}
	want := strings.Split(*cols, ",")
	var out []column
	if pg != "" {
		out = append(out,
			column{name: "pq", driver: "postgres", dsn: pg, options: "lib/pq", d: dialect.Postgres},
			column{name: "pgx", driver: "pgx", dsn: pg, options: "pgx/v5 stdlib (statement cache)", d: dialect.Postgres})
	}
	if my != "" {
		ip := strings.Replace(my, ")/txbox", ")/txbox?interpolateParams=true", 1)
		out = append(out,
			column{name: "mariadb", driver: "mysql", dsn: my, options: "go-sql-driver/mysql, server-side prepared statements", d: dialect.MySQL},
			column{name: "mariadb-ip", driver: "mysql", dsn: ip, options: "go-sql-driver/mysql, interpolateParams=true", d: dialect.MySQL})
	}
	out = slices.DeleteFunc(out, func(c column) bool { return !slices.Contains(want, c.name) })
	for i := range out {
		out[i].profile = profile
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("profile %s: no DSN set; see the package documentation", profile)
	}
	return out, nil
}

// printSettings reads the durability settings back from each server, with the DSN's options (no password).
func printSettings(cs []column) {
	ctx := context.Background()
	seen := map[string]bool{}
	for _, c := range cs {
		fmt.Printf("column %-10s driver %s; DSN %s\n", c.name, c.options, redact(c))
		if seen[c.d.Name()] {
			continue
		}
		seen[c.d.Name()] = true
		db, err := sql.Open(c.driver, c.dsn)
		if err != nil {
			fmt.Printf("  settings: %v\n", err)
			continue
		}
		var q string
		if c.d == dialect.Postgres {
			q = "SELECT 'PostgreSQL ' || current_setting('server_version') || ': fsync=' || current_setting('fsync') ||" +
				" ', synchronous_commit=' || current_setting('synchronous_commit') || ', full_page_writes=' ||" +
				" current_setting('full_page_writes') || ', wal_sync_method=' || current_setting('wal_sync_method')"
		} else {
			q = "SELECT CONCAT('MariaDB ', VERSION(), ': innodb_flush_log_at_trx_commit=', @@innodb_flush_log_at_trx_commit," +
				" ', log_bin=', @@log_bin, ', sync_binlog=', @@sync_binlog, ', innodb_flush_method=', @@innodb_flush_method)"
		}
		var s string
		if err := db.QueryRowContext(ctx, q).Scan(&s); err != nil {
			s = err.Error()
		}
		fmt.Printf("  server settings: %s\n", s)
		_ = db.Close()
	}
}

// redact shows where a DSN points and its options, never its password.
func redact(c column) string {
	if c.d == dialect.MySQL {
		cfg, err := mysql.ParseDSN(c.dsn)
		if err != nil {
			return "(unparsable)"
		}
		return fmt.Sprintf("tcp(%s)/%s interpolateParams=%v", cfg.Addr, cfg.DBName, cfg.InterpolateParams)
	}
	u, err := url.Parse(c.dsn)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	return u.String()
}

// withDB runs fn on a fresh, migrated database (MySQL) or schema (PostgreSQL) of c and drops it afterwards.
func withDB(c column, fn func(db *sqlx.DB) error) error {
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "txbox_bench_" + hex.EncodeToString(b)
	admin, err := sql.Open(c.driver, c.dsn)
	if err != nil {
		return err
	}
	defer admin.Close()
	var dsn, drop string
	if c.d == dialect.MySQL {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			return err
		}
		cfg, err := mysql.ParseDSN(c.dsn)
		if err != nil {
			return err
		}
		cfg.DBName = name
		dsn, drop = cfg.FormatDSN(), "DROP DATABASE "+name
	} else {
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
			return err
		}
		u, err := url.Parse(c.dsn)
		if err != nil {
			return err
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		dsn, drop = u.String(), "DROP SCHEMA "+name+" CASCADE"
	}
	setCurrent(func() { _, _ = admin.ExecContext(ctx, drop) })
	defer dropCurrent()
	db, err := sqlx.Open(c.driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(40)
	db.SetMaxIdleConns(40)
	if err := migrations.Up(ctx, db.DB, c.d); err != nil {
		return err
	}
	return fn(db)
}

// analyze refreshes the statistics of tables, as a steady-state system would have them.
func analyze(db *sqlx.DB, d dialect.Dialect, tables ...string) error {
	for _, t := range tables {
		q := "ANALYZE TABLE " + t
		if d == dialect.Postgres {
			q = "ANALYZE " + t
		}
		if _, err := db.Exec(q); err != nil {
			return err
		}
	}
	return nil
}

// runProfile runs every case of -parts on the columns of one profile and reports whether all targets were met.
func runProfile(cs []column) bool {
	ok := true
	has := func(p string) bool { return slices.Contains(strings.Split(*parts, ","), p) }
	if has("enqueue") {
		for _, stmts := range ints(*enqStmts) {
			for _, producers := range ints(*enqProd) {
				ok = runEnqueue(cs, stmts, producers) && ok
			}
		}
	}
	if has("drain") {
		for _, workers := range []int{1, 4} {
			ok = runDrain(cs, workers) && ok
		}
	}
	if has("inbox") {
		ok = runInbox(cs) && ok
	}
	if has("latency") {
		ok = runLatency(cs) && ok
	}
	return ok
}

// ints parses a comma-separated list of numbers; bad entries are fatal.
func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bad number %q in %q\n", f, s)
			os.Exit(2)
		}
		out = append(out, n)
	}
	return out
}

// current drops the database or schema in use; dropCurrent runs it once (at the end of withDB, or on a signal).
var (
	currentMu sync.Mutex
	current   func()
)

func setCurrent(drop func()) {
	currentMu.Lock()
	defer currentMu.Unlock()
	current = drop
}

func dropCurrent() {
	currentMu.Lock()
	defer currentMu.Unlock()
	if current != nil {
		current()
		current = nil
	}
}
