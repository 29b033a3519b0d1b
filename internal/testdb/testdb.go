package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers "postgres"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/migrations"
)

// Target is one database server + driver combination that tests run against.
type Target struct {
	Name    string          // subtest name: "mariadb", "postgres-pq", "postgres-pgx"
	Dialect dialect.Dialect //
	Driver  string          // database/sql driver name
	EnvVar  string          // environment variable holding the server's DSN
}

// Targets are every combination txbox supports and tests.
var Targets = []Target{
	{Name: "mariadb", Dialect: dialect.MySQL, Driver: "mysql", EnvVar: "TXBOX_MYSQL_DSN"},
	{Name: "postgres-pq", Dialect: dialect.Postgres, Driver: "postgres", EnvVar: "TXBOX_POSTGRES_DSN"},
	{Name: "postgres-pgx", Dialect: dialect.Postgres, Driver: "pgx", EnvVar: "TXBOX_POSTGRES_DSN"},
}

// DB is an isolated database (MySQL) or schema (PostgreSQL) for one test. It is dropped when the test ends.
type DB struct {
	*sqlx.DB
	Target  Target
	Dialect dialect.Dialect
	// DSN reaches this isolated database or schema, for subprocesses and second pools.
	DSN string
	// Name is the database (MySQL) or schema (PostgreSQL) name.
	Name string
	// Partitioned tells that the installation was created with the partitioned layout (see Partitioned);
	// InboxKeys is then "txbox_inbox_keys", else "txbox_inbox": the table the inbox records keys in.
	Partitioned bool
	InboxKeys   string
}

type options struct {
	unmigrated  bool
	mysqlParams map[string]string
	maxOpen     int
	partitioned *bool
}

// Option changes what Open prepares.
type Option func(*options)

// Unmigrated leaves the database empty: no txbox tables.
func Unmigrated() Option { return func(o *options) { o.unmigrated = true } }

// MySQLParams adds DSN parameters for the MySQL driver (e.g. "clientFoundRows": "true"). Ignored on PostgreSQL.
func MySQLParams(kv map[string]string) Option { return func(o *options) { o.mysqlParams = kv } }

// MaxOpenConns limits the pool (default 20).
func MaxOpenConns(n int) Option { return func(o *options) { o.maxOpen = n } }

// Partitioned(true) creates the installation with the partitioned layout (migrations.WithPartitioned),
// Partitioned(false) with the unpartitioned one. Without it, the layout is the unpartitioned one unless the
// environment variable TXBOX_TEST_LAYOUT is "partitioned", which runs every test of a run on it.
func Partitioned(on bool) Option { return func(o *options) { o.partitioned = &on } }

// Layouts are the inbox-key layouts RunLayouts runs a body on.
var Layouts = []struct {
	Name        string
	Partitioned bool
}{{"unpartitioned", false}, {"partitioned", true}}

// RunLayouts runs fn as Run does, once per layout: subtests "unpartitioned/mariadb" ... "partitioned/postgres-pgx".
func RunLayouts(t *testing.T, fn func(t *testing.T, db *DB), opts ...Option) {
	t.Helper()
	for _, l := range Layouts {
		t.Run(l.Name, func(t *testing.T) {
			Run(t, fn, append(opts[:len(opts):len(opts)], Partitioned(l.Partitioned))...)
		})
	}
}

// Run runs fn as one parallel subtest per target, each with its own fresh, migrated DB.
func Run(t *testing.T, fn func(t *testing.T, db *DB), opts ...Option) {
	t.Helper()
	for _, tg := range Targets {
		t.Run(tg.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, Open(t, tg, opts...))
		})
	}
}

// ServerDSN returns the target's server DSN from the environment. When it is unset the test is skipped, or fails
// under CI.
func ServerDSN(t testing.TB, tg Target) string {
	t.Helper()
	dsn := os.Getenv(tg.EnvVar)
	if dsn == "" {
		msg := fmt.Sprintf("%s is not set: start the databases with `make services` and export the DSNs with "+
			"`eval \"$(scripts/services.sh env)\"`", tg.EnvVar)
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and %s", msg)
		}
		t.Skip(msg)
	}
	return dsn
}

// Open creates an isolated database/schema on tg's server, migrates it (unless Unmigrated) and returns a pool
// on it. Everything is dropped in t.Cleanup.
func Open(t testing.TB, tg Target, opts ...Option) *DB {
	t.Helper()
	o := options{maxOpen: 20}
	for _, f := range opts {
		f(&o)
	}
	server := ServerDSN(t, tg)
	admin := adminPool(t, tg.Driver, server)
	name := "txbox_t_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var dsn string
	switch tg.Dialect.Name() {
	case "mysql":
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			t.Fatalf("testdb: create database %s: %v", name, err)
		}
		cfg, err := mysql.ParseDSN(server)
		if err != nil {
			t.Fatalf("testdb: parse %s: %v", tg.EnvVar, err)
		}
		cfg.DBName = name
		for k, v := range o.mysqlParams {
			if cfg.Params == nil {
				cfg.Params = map[string]string{}
			}
			cfg.Params[k] = v
			if k == "clientFoundRows" {
				cfg.ClientFoundRows = v == "true"
				delete(cfg.Params, k)
			}
		}
		dsn = cfg.FormatDSN()
	default:
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
			t.Fatalf("testdb: create schema %s: %v", name, err)
		}
		u, err := url.Parse(server)
		if err != nil {
			t.Fatalf("testdb: parse %s (want a postgres:// URL): %v", tg.EnvVar, err)
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		stmt := "DROP DATABASE IF EXISTS " + name
		if tg.Dialect.Name() == "postgres" {
			stmt = "DROP SCHEMA IF EXISTS " + name + " CASCADE"
		}
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
	})

	db, err := sqlx.Open(tg.Driver, dsn)
	if err != nil {
		t.Fatalf("testdb: open %s: %v", tg.Name, err)
	}
	db.SetMaxOpenConns(o.maxOpen)
	db.SetMaxIdleConns(o.maxOpen)
	t.Cleanup(func() { _ = db.Close() }) // runs before the drop (cleanups are LIFO)
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("testdb: ping %s: %v", tg.Name, err)
	}
	partitioned := os.Getenv("TXBOX_TEST_LAYOUT") == "partitioned"
	if o.partitioned != nil {
		partitioned = *o.partitioned
	}
	if !o.unmigrated {
		if err := migrations.Up(ctx, db.DB, tg.Dialect, migrations.WithPartitioned(partitioned)); err != nil {
			t.Fatalf("testdb: migrate %s: %v", tg.Name, err)
		}
	}
	keys := "txbox_inbox"
	if partitioned {
		keys = "txbox_inbox_keys"
	}
	return &DB{DB: db, Target: tg, Dialect: tg.Dialect, DSN: dsn, Name: name, Partitioned: partitioned, InboxKeys: keys}
}

// Main runs the package's tests, closes the shared admin pools and then fails the run if goroutines leaked.
// Call it from TestMain: func TestMain(m *testing.M) { testdb.Main(m) }.
func Main(m *testing.M, leakOpts ...LeakOption) { os.Exit(Check(m, leakOpts...)) }

// Check is Main without the exit: it returns the exit code, for a TestMain that has cleaning up of its own to do
// before it exits.
func Check(m *testing.M, leakOpts ...LeakOption) int {
	code := m.Run()
	closeAdmins()
	if code == 0 {
		if err := findLeaks(leakOpts...); err != nil {
			fmt.Fprintf(os.Stderr, "testdb: goroutines leaked: %v\n", err)
			code = 1
		}
	}
	return code
}

var (
	adminMu sync.Mutex
	admins  = map[string]*sql.DB{}
)

func adminPool(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	adminMu.Lock()
	defer adminMu.Unlock()
	key := driver + " " + dsn
	if db, ok := admins[key]; ok {
		return db
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("testdb: open %s: %v", redact(dsn), err)
	}
	db.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		t.Fatalf("testdb: cannot reach %s: %v (is `make services` running?)", redact(dsn), err)
	}
	admins[key] = db
	return db
}

func closeAdmins() {
	adminMu.Lock()
	defer adminMu.Unlock()
	for k, db := range admins {
		_ = db.Close()
		delete(admins, k)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// redact hides the password of a DSN for messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil && strings.Contains(dsn, "://") {
		u.User = url.User(u.User.Username())
		return u.String()
	}
	if cfg, err := mysql.ParseDSN(dsn); err == nil {
		cfg.Passwd = ""
		return cfg.FormatDSN()
	}
	return "<dsn>"
}
