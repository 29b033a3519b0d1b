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
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/migrations"
)

var (
	rounds   = flag.Int("rounds", 3, "runs per figure; the median is reported")
	rows     = flag.Int("rows", 100000, "prefilled rows for the drain benchmark")
	txs      = flag.Int("txs", 2000, "transactions per enqueue run")
	seconds  = flag.Int("latency-seconds", 10, "duration of the latency run")
	rate     = flag.Int("rate", 1000, "messages per second in the latency run")
	only     = flag.String("only", "", "mysql or postgres: run one database only")
	batch    = flag.Int("batch", 500, "batch size for the relay and the raw loop")
	producer = flag.Int("producers", 8, "concurrent producers in the latency run")
	notify   = flag.Bool("notify", true, "PostgreSQL: Enqueue sends NOTIFY in the enqueue benchmark (outbox.Config.DisableNotify)")
	parts    = flag.String("parts", "enqueue,drain,latency", "benchmarks to run")
	clients  = flag.Int("enqueue-clients", 1, "concurrent producers in the enqueue benchmark")
	cpuprof  = flag.String("cpuprofile", "", "write a CPU profile of the whole run (this process only, not the database) to this file")
)

type target struct {
	name, driver, dsn, options string
	d                          dialect.Dialect
}

type result struct {
	db, measure string
	value, raw  float64 // raw 0: no baseline
	ratio       float64 // median of the per-round ratios (each round runs txbox and raw back to back)
	unit        string
	target      string
	ok          func(v, ratio float64) bool
	spread      string // min–max of the rounds, where reported
}

func main() {
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	var targets []target
	if dsn := os.Getenv("TXBOX_MYSQL_DSN"); dsn != "" && *only != "postgres" {
		targets = append(targets, target{name: "mariadb", driver: "mysql", dsn: dsn, options: "go-sql-driver/mysql, interpolateParams=true", d: dialect.MySQL})
	}
	if dsn := os.Getenv("TXBOX_POSTGRES_DSN"); dsn != "" && *only != "mysql" {
		targets = append(targets, target{name: "postgres", driver: "pgx", dsn: dsn, options: "pgx/v5 stdlib", d: dialect.Postgres})
	}
	if len(targets) == 0 {
		fmt.Fprintln(os.Stderr, "set TXBOX_MYSQL_DSN and/or TXBOX_POSTGRES_DSN (eval \"$(scripts/services.sh env)\")")
		os.Exit(2)
	}
	var all []result
	for _, tg := range targets {
		fmt.Fprintf(os.Stderr, "== %s (%s)\n", tg.name, tg.options)
		res, err := runTarget(tg)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", tg.name, err)
			os.Exit(1)
		}
		all = append(all, res...)
	}
	fmt.Printf("\nmedians of %d rounds (ratio: median of per-round ratios, txbox and raw run back to back); drain of %d rows, batch %d; latency at %d msg/s for %ds\n", *rounds, *rows, *batch, *rate, *seconds)
	for _, tg := range targets {
		fmt.Printf("%-9s driver: %s\n", tg.name, tg.options)
	}
	fmt.Printf("\n%-9s %-26s %12s %12s %7s  %-14s %s\n", "db", "measure", "txbox", "raw", "ratio", "target", "")
	for _, r := range all {
		raw, ratio := "", ""
		rt := 0.0
		if r.raw > 0 {
			rt = r.ratio
			raw, ratio = fmt.Sprintf("%.0f", r.raw), fmt.Sprintf("%.2f", rt)
		}
		verdict := ""
		if r.ok != nil {
			verdict = "ok"
			if !r.ok(r.value, rt) {
				verdict = "MISSED"
			}
		}
		fmt.Printf("%-9s %-26s %12s %12s %7s  %-14s %s\n", r.db, r.measure, fmtVal(r.value, r.unit), raw, ratio, r.target, verdict)
		if r.spread != "" {
			fmt.Printf("%-9s %-26s %s\n", "", "  min–max of rounds", r.spread)
		}
	}
}

func fmtVal(v float64, unit string) string {
	if unit == "ms" {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

func runTarget(tg target) ([]result, error) {
	var out []result
	// (a) enqueue
	for _, stmts := range []int{1, 3} {
		if !strings.Contains(*parts, "enqueue") {
			break
		}
		var with, without, plus1, hand []float64
		for range *rounds {
			err := withDB(tg, func(db *sqlx.DB) error {
				a, b, c, h, err := benchEnqueue(db, tg.d, *txs, stmts)
				with, without, plus1, hand = append(with, a), append(without, b), append(plus1, c), append(hand, h)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("enqueue: %w", err)
			}
		}
		out = append(out, result{db: tg.name, measure: fmt.Sprintf("enqueue tx/s, %d-stmt tx, %d cl", stmts, *clients), value: median(with), raw: median(without),
			ratio: medianRatio(with, without), unit: "tx/s", target: ">= 0.8x raw", ok: func(_, r float64) bool { return r >= 0.8 }},
			result{db: tg.name, measure: "  yardstick: +SELECT 1", value: median(plus1), raw: median(without),
				ratio: medianRatio(plus1, without), unit: "tx/s", target: "(1 round trip)"},
			result{db: tg.name, measure: "  yardstick: +hand INSERT", value: median(hand), raw: median(without),
				ratio: medianRatio(hand, without), unit: "tx/s", target: "(no txbox)"})
	}
	// (b) drain
	for _, workers := range []int{1, 4} {
		if !strings.Contains(*parts, "drain") {
			break
		}
		var relayRates, rawRates []float64
		for range *rounds {
			err := withDB(tg, func(db *sqlx.DB) error {
				r, err := benchDrainRaw(db, tg.d, *rows, workers)
				rawRates = append(rawRates, r)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("raw drain: %w", err)
			}
			err = withDB(tg, func(db *sqlx.DB) error {
				r, err := benchDrainRelay(db, tg.d, *rows, workers)
				relayRates = append(relayRates, r)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("relay drain: %w", err)
			}
		}
		out = append(out, result{db: tg.name, measure: fmt.Sprintf("drain msg/s, %d worker(s)", workers), value: median(relayRates),
			raw: median(rawRates), ratio: medianRatio(relayRates, rawRates), unit: "msg/s", target: ">= 0.7x raw", ok: func(_, r float64) bool { return r >= 0.7 },
			spread: spread(relayRates, rawRates)})
	}
	// (c) latency
	if !strings.Contains(*parts, "latency") {
		return out, nil
	}
	var p50s, p99s []float64
	for range *rounds {
		err := withDB(tg, func(db *sqlx.DB) error {
			p50, p99, err := benchLatency(db, tg.d, *rate, time.Duration(*seconds)*time.Second)
			p50s, p99s = append(p50s, p50), append(p99s, p99)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("latency: %w", err)
		}
	}
	var ok func(v, r float64) bool
	tgt := "(none)"
	if tg.d == dialect.Postgres {
		tgt, ok = "<= 25 ms", func(v, _ float64) bool { return v <= 25 }
	}
	out = append(out,
		result{db: tg.name, measure: "commit->publish p50", value: median(p50s), unit: "ms"},
		result{db: tg.name, measure: "commit->publish p99", value: median(p99s), unit: "ms", target: tgt, ok: ok})
	return out, nil
}

// spread is the min–max of txbox's rounds, the raw rounds and the per-round ratios.
func spread(a, b []float64) string {
	rs := make([]float64, len(a))
	for i := range a {
		rs[i] = a[i] / b[i]
	}
	return fmt.Sprintf("txbox %.0f–%.0f, raw %.0f–%.0f, ratio %.2f–%.2f", slices.Min(a), slices.Max(a), slices.Min(b),
		slices.Max(b), slices.Min(rs), slices.Max(rs))
}

func medianRatio(a, b []float64) float64 {
	rs := make([]float64, len(a))
	for i := range a {
		rs[i] = a[i] / b[i]
	}
	return median(rs)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// withDB runs fn on a fresh, migrated database (MySQL) or schema (PostgreSQL) and drops it afterwards.
func withDB(tg target, fn func(db *sqlx.DB) error) error {
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "txbox_bench_" + hex.EncodeToString(b)
	admin, err := sql.Open(tg.driver, tg.dsn)
	if err != nil {
		return err
	}
	defer admin.Close()
	var dsn, drop string
	switch tg.d {
	case dialect.MySQL:
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			return err
		}
		cfg, err := mysql.ParseDSN(tg.dsn)
		if err != nil {
			return err
		}
		cfg.DBName = name
		cfg.InterpolateParams = true
		dsn, drop = cfg.FormatDSN(), "DROP DATABASE "+name
	default:
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+name); err != nil {
			return err
		}
		u, err := url.Parse(tg.dsn)
		if err != nil {
			return err
		}
		q := u.Query()
		q.Set("search_path", name)
		u.RawQuery = q.Encode()
		dsn, drop = u.String(), "DROP SCHEMA "+name+" CASCADE"
	}
	defer func() { _, _ = admin.ExecContext(ctx, drop) }()
	db, err := sqlx.Open(tg.driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := migrations.Up(ctx, db.DB, tg.d); err != nil {
		return err
	}
	return fn(db)
}
