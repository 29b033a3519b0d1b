package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/faults"
	"github.com/txbox/txbox/migrations"
	"github.com/txbox/txbox/outbox"
)

// options are the suite's settings (see the flags in main.go).
type options struct {
	dbs        []string // "mariadb", "postgres"
	scenarios  []string
	rows       int // outbox rows of the relay scenarios
	deliveries int // inbox keys of the inbox scenario
	outages    []time.Duration
	relayKills int
	stateDir   string
	txbox      string // the txbox binary; empty: build it
	scripts    string
	rocketLib  string
	verbose    bool
	keep       bool
	// strictRecovery makes a broker recovery over its target an invariant failure (the bounded test, which
	// must not pass or fail on timing, turns it off).
	strictRecovery bool
}

// scenarioNames are the scenarios, in the order they run.
var scenarioNames = []string{"db-kill-drain", "db-kill-inbox", "conn-reset", "broker-kill", "relay-kill"}

// suite is one run: the private stack and what the scenarios share.
type suite struct {
	opts  options
	log   io.Writer // the scripts', servers' and relays' output
	stack *faults.Stack

	namesrv, broker string
	txboxBin        string
	once            sync.Once
	// restarting delivers the result of a broker start still running after its port accepted again.
	restarting chan error
}

// target is one database of the stack.
type target struct {
	name   string // "mariadb" or "postgres"
	svc    faults.Service
	d      dialect.Dialect
	driver string
	dsn    string // the server's DSN (database txbox)
}

func (s *suite) target(ctx context.Context, name string) (target, error) {
	t := target{name: name}
	switch name {
	case "mariadb", "mysql":
		t.name, t.svc, t.d, t.driver = "mariadb", faults.MariaDB, dialect.MySQL, "mysql"
	case "postgres":
		t.svc, t.d, t.driver = faults.Postgres, dialect.Postgres, "pgx"
	default:
		return t, fmt.Errorf("unknown database %q (want mariadb or postgres)", name)
	}
	env, err := s.stack.Env(ctx, t.svc)
	if err != nil {
		return t, err
	}
	t.dsn = env["TXBOX_MYSQL_DSN"]
	if t.svc == faults.Postgres {
		t.dsn = env["TXBOX_POSTGRES_DSN"]
	}
	if t.dsn == "" {
		return t, fmt.Errorf("%s.sh env printed no DSN", t.svc)
	}
	return t, nil
}

// database creates a fresh, migrated database (MariaDB) or schema (PostgreSQL) on t's server and returns its
// DSN and a pool on it.
func (s *suite) database(ctx context.Context, t target, label string) (string, *sqlx.DB, error) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "faults_" + label + "_" + hex.EncodeToString(b)
	admin, err := sqlx.Open(t.driver, t.dsn)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	var dsn string
	if t.svc == faults.MariaDB {
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			return "", nil, fmt.Errorf("create database: %w", err)
		}
		cfg, err := mysql.ParseDSN(t.dsn)
		if err != nil {
			return "", nil, err
		}
		cfg.DBName = name
		dsn = cfg.FormatDSN()
	} else {
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
			return "", nil, fmt.Errorf("create schema: %w", err)
		}
		u, err := url.Parse(t.dsn)
		if err != nil {
			return "", nil, err
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	db, err := sqlx.Open(t.driver, dsn)
	if err != nil {
		return "", nil, err
	}
	if err := migrations.Up(ctx, db.DB, t.d); err != nil {
		_ = db.Close()
		return "", nil, fmt.Errorf("migrate: %w", err)
	}
	return dsn, db, nil
}

// pool opens another pool on dsn (each relay gets its own, as separate processes would).
func pool(t target, dsn string, conns int) (*sqlx.DB, error) {
	db, err := sqlx.Open(t.driver, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	return db, nil
}

// messages builds n messages for topic: every other one keyed, over 100 sharding keys numbered in enqueue order
// (faults.SeqHeader) so that the Recorder can check their order.
func messages(topic, prefix string, n int) ([]outbox.Message, []string) {
	seq := map[string]int{}
	msgs := make([]outbox.Message, n)
	keys := make([]string, n)
	for i := range n {
		keys[i] = prefix + strconv.Itoa(i)
		msgs[i] = outbox.Message{Topic: topic, Key: keys[i], Payload: []byte("payload of " + keys[i])}
		if i%2 == 0 {
			sk := prefix + "s" + strconv.Itoa(i%200/2)
			msgs[i].ShardingKey = sk
			msgs[i].Headers = map[string]string{faults.SeqHeader: strconv.Itoa(seq[sk])}
			seq[sk]++
		}
	}
	return msgs, keys
}

// enqueue commits msgs in transactions of 500.
func enqueue(ctx context.Context, db *sqlx.DB, d dialect.Dialect, msgs []outbox.Message) error {
	ob, err := outbox.New(outbox.Config{Dialect: d})
	if err != nil {
		return err
	}
	for start := 0; start < len(msgs); start += 500 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := ob.Enqueue(ctx, tx, msgs[start:min(len(msgs), start+500)]...); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// count counts the rows of a txbox table, retrying while the database is down.
func count(ctx context.Context, db *sqlx.DB, table string) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n)
	return n, err
}

// waitCount polls the outbox until cond holds for its row count (errors while the database is down are
// retried) or ctx ends; it returns when the condition first held.
func waitCount(ctx context.Context, db *sqlx.DB, cond func(int) bool) (time.Time, error) {
	for {
		n, err := count(ctx, db, "txbox_outbox")
		if err == nil && cond(n) {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("outbox still has %d rows (%v): %w", n, err, ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// txboxBinary builds cmd/txbox once (unless -txbox names one) and returns its path.
func (s *suite) txboxBinary(ctx context.Context) (string, error) {
	var err error
	s.once.Do(func() {
		if s.opts.txbox != "" {
			s.txboxBin = s.opts.txbox
			return
		}
		bin := filepath.Join(s.stack.Dir, "txbox")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/txbox")
		cmd.Dir = filepath.Dir(s.opts.scripts)
		cmd.Stdout, cmd.Stderr = s.log, s.log
		if err = cmd.Run(); err != nil {
			err = fmt.Errorf("build txbox (or pass -txbox): %w", err)
			return
		}
		s.txboxBin = bin
	})
	if err == nil && s.txboxBin == "" {
		err = fmt.Errorf("txbox binary unavailable")
	}
	return s.txboxBin, err
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func seconds(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }

// logLevel is the relays' log level: Debug with -v (the output goes to stderr then), Warn otherwise.
func (s *suite) logLevel() slog.Level {
	if s.opts.verbose {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
