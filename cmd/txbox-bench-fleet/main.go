package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/migrations"
	"github.com/txbox/txbox/outbox"
)

var (
	txboxBin  = flag.String("txbox", "", "the txbox binary to run (go build -o /tmp/txbox ./cmd/txbox)")
	rounds    = flag.Int("rounds", 3, "rounds per figure; medians with min–max are reported")
	relays    = flag.Int("relays", 3, "relay processes")
	databases = flag.Int("databases", 12, "databases (half MariaDB, half PostgreSQL)")
	rows      = flag.Int("rows", 10000, "messages per database in the fleet's drain")
	workers   = flag.Int("workers", 2, "txbox relay --workers")
	batch     = flag.Int("batch", 500, "txbox relay --batch")
	keep      = flag.Bool("keep", false, "keep the databases and the relays' logs (in the temporary directory) after a round")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "txbox-bench-fleet:", err)
		os.Exit(1)
	}
}

type target struct {
	name, driver, dsn string
	d                 dialect.Dialect
}

func run() error {
	mdsn, pdsn, namesrv := os.Getenv("TXBOX_MYSQL_DSN"), os.Getenv("TXBOX_POSTGRES_DSN"), os.Getenv("TXBOX_ROCKETMQ_NAMESRV")
	if *txboxBin == "" || mdsn == "" || pdsn == "" || namesrv == "" {
		return errors.New("needs -txbox and TXBOX_MYSQL_DSN, TXBOX_POSTGRES_DSN, TXBOX_ROCKETMQ_NAMESRV (eval \"$(scripts/services.sh env)\")")
	}
	if *relays < 2 || *databases < 2 || *rows < 1 || *rounds < 1 {
		return errors.New("-relays and -databases must be at least 2, -rows and -rounds at least 1")
	}
	targets := []target{{"mariadb", "mysql", mdsn, dialect.MySQL}, {"postgres", "pgx", pdsn, dialect.Postgres}}
	topic := "TxboxBenchFleet" + randomHex(4)
	if out, err := exec.Command("scripts/rocketmq.sh", "topic", topic, "8").CombinedOutput(); err != nil {
		return fmt.Errorf("create topic %s: %v\n%s", topic, err, out)
	}
	fmt.Printf("txbox-bench-fleet: %d relay processes (--workers %d --batch %d), %d databases (%d MariaDB, %d PostgreSQL) vs 1, %d rounds, topic %s on %s\n",
		*relays, *workers, *batch, *databases, *databases-*databases/2, *databases/2, *rounds, topic, namesrv)
	var fleetRate, oneRate, held, drained []float64
	for round := range *rounds {
		r, err := drainRound(targets, topic, namesrv, *databases, *rows)
		if err != nil {
			return fmt.Errorf("round %d, %d databases: %w", round+1, *databases, err)
		}
		fleetRate = append(fleetRate, r)
		// One database with the rows of all of them (MariaDB and PostgreSQL in turn).
		r1, err := drainRound(targets[round%2:round%2+1], topic, namesrv, 1, *rows**databases)
		if err != nil {
			return fmt.Errorf("round %d, 1 database: %w", round+1, err)
		}
		oneRate = append(oneRate, r1)
		h, d, err := takeoverRound(targets, topic, namesrv)
		if err != nil {
			return fmt.Errorf("round %d, takeover: %w", round+1, err)
		}
		held, drained = append(held, h...), append(drained, d...)
		fmt.Printf("round %d: %d databases %.0f msg/s, 1 database (%s) %.0f msg/s, takeover held %s drained %s\n",
			round+1, *databases, r, targets[round%2].name, r1, seconds(h), seconds(d))
	}
	fmt.Printf("\n%-48s %s\n", "figure", "median (min–max)")
	fmt.Printf("%-48s %s msg/s\n", fmt.Sprintf("drain, %d relays over %d databases", *relays, *databases), stats(fleetRate, "%.0f"))
	fmt.Printf("%-48s %s msg/s\n", fmt.Sprintf("drain, %d relays over 1 database", *relays), stats(oneRate, "%.0f"))
	fmt.Printf("%-48s %.2fx\n", "ratio of the medians", median(fleetRate)/median(oneRate))
	fmt.Printf("%-48s %s s (%d databases)\n", "takeover: killed relay's databases held again", stats(held, "%.2f"), len(held))
	fmt.Printf("%-48s %s s\n", "takeover: a message in each of them drained", stats(drained, "%.2f"))
	return nil
}

// bench is one round's databases, databases file and relay processes.
type bench struct {
	dir    string
	dbs    []*benchDB
	procs  []*relayProc
	file   string
	env    []string
	topic  string
	nsaddr string
}

type benchDB struct {
	name string
	t    target
	db   *sqlx.DB
	drop func()
}

type relayProc struct {
	id      string
	cmd     *exec.Cmd
	metrics string
	done    chan struct{}
}

func newBench(targets []target, topic, namesrv string, n int) (*bench, error) {
	dir, err := os.MkdirTemp("", "txbox-bench-fleet-")
	if err != nil {
		return nil, err
	}
	b := &bench{dir: dir, file: filepath.Join(dir, "databases.yaml"), topic: topic, nsaddr: namesrv}
	var file strings.Builder
	file.WriteString("databases:\n")
	for i := range n {
		t := targets[i%len(targets)]
		d, err := createDB(t, fmt.Sprintf("db%02d", i))
		if err != nil {
			b.close()
			return nil, err
		}
		b.dbs = append(b.dbs, d)
		v := strings.ToUpper(d.name) + "_DSN"
		fmt.Fprintf(&file, "  - {name: %s, dialect: %s, dsn: '${%s}'}\n", d.name, t.d.Name(), v)
	}
	for _, d := range b.dbs {
		b.env = append(b.env, strings.ToUpper(d.name)+"_DSN="+d.t.dsn)
	}
	if err := os.WriteFile(b.file, []byte(file.String()), 0o600); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// start starts the relay processes and waits until each serves its metrics.
func (b *bench) start() error {
	group := "TxboxBenchFleetP" + randomHex(4)
	for i := range *relays {
		port, err := freePort()
		if err != nil {
			return err
		}
		id := fmt.Sprintf("r%d", i)
		logf, err := os.Create(filepath.Join(b.dir, id+".log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(*txboxBin, "relay", "--databases", b.file, "--relay-id", id, "--namesrv", b.nsaddr,
			"--group", group, "--workers", strconv.Itoa(*workers), "--batch", strconv.Itoa(*batch),
			"--max-poll-interval", "200ms", "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", port), "--log-level", "warn")
		cmd.Env = append(os.Environ(), b.env...)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			_ = logf.Close()
			return err
		}
		p := &relayProc{id: id, cmd: cmd, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), done: make(chan struct{})}
		go func() { _ = cmd.Wait(); _ = logf.Close(); close(p.done) }()
		b.procs = append(b.procs, p)
	}
	for _, p := range b.procs {
		if err := poll(time.Minute, func() bool { _, err := p.held(); return err == nil }); err != nil {
			return fmt.Errorf("relay %s serves no metrics (see %s): %w", p.id, b.dir, err)
		}
	}
	return nil
}

// close stops the relays (SIGTERM, then SIGKILL) and drops the databases.
func (b *bench) close() {
	for _, p := range b.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	for _, d := range b.dbs {
		_ = d.db.Close()
		if !*keep {
			d.drop()
		}
	}
	if !*keep {
		_ = os.RemoveAll(b.dir)
	}
}

var heldSample = regexp.MustCompile(`(?m)^txbox_fleet_database_held\{database="([^"]+)"\} 1$`)

// held returns the databases a relay holds, from its /metrics.
func (p *relayProc) held() ([]string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.metrics)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", p.metrics, resp.Status)
	}
	var out []string
	for _, m := range heldSample.FindAllStringSubmatch(string(body), -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out, nil
}

// backlog is the rows left in the outboxes of dbs.
func backlog(dbs []*benchDB) (int, error) {
	total := 0
	for _, d := range dbs {
		var n int
		if err := d.db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM txbox_outbox").Scan(&n); err != nil {
			return 0, fmt.Errorf("%s: %w", d.name, err)
		}
		total += n
	}
	return total, nil
}

// drainRound fills n databases with perDB rows each, starts the relays and returns the drain rate in msg/s.
func drainRound(targets []target, topic, namesrv string, n, perDB int) (float64, error) {
	b, err := newBench(targets, topic, namesrv, n)
	if err != nil {
		return 0, err
	}
	defer b.close()
	for _, d := range b.dbs {
		if err := fill(d, topic, perDB, "d"); err != nil {
			return 0, err
		}
	}
	total := n * perDB
	if err := b.start(); err != nil {
		return 0, err
	}
	var first time.Time
	var atFirst int
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		left, err := backlog(b.dbs)
		if err != nil {
			return 0, err
		}
		now := time.Now()
		switch {
		case first.IsZero() && left < total:
			first, atFirst = now, left
		case left == 0:
			if now.Sub(first) <= 0 {
				return 0, errors.New("drained between two polls: raise -rows")
			}
			return float64(atFirst) / now.Sub(first).Seconds(), nil
		}
		time.Sleep(100 * time.Millisecond) // the poll interval of the measurement
	}
	return 0, fmt.Errorf("not drained within 30 minutes (see %s)", b.dir)
}

// takeoverRound settles the fleet over its databases, SIGKILLs the relay holding the most, and returns per
// database of it the seconds until a survivor holds it and until a message enqueued after the kill is drained.
func takeoverRound(targets []target, topic, namesrv string) (held, drained []float64, err error) {
	b, err := newBench(targets, topic, namesrv, *databases)
	if err != nil {
		return nil, nil, err
	}
	defer b.close()
	if err := b.start(); err != nil {
		return nil, nil, err
	}
	holders := func(ps []*relayProc) map[string]string {
		out := map[string]string{}
		for _, p := range ps {
			hs, err := p.held()
			if err != nil {
				continue
			}
			for _, db := range hs {
				if _, twice := out[db]; twice {
					out[db] = "(twice)"
				} else {
					out[db] = p.id
				}
			}
		}
		return out
	}
	settled := func() bool {
		hs := holders(b.procs)
		per := map[string]int{}
		for _, h := range hs {
			per[h]++
		}
		lo, hi := *databases / *relays, (*databases+*relays-1) / *relays
		if len(hs) != *databases || per["(twice)"] > 0 {
			return false
		}
		for _, p := range b.procs {
			if per[p.id] < lo || per[p.id] > hi {
				return false
			}
		}
		return true
	}
	if err := poll(2*time.Minute, settled); err != nil {
		return nil, nil, fmt.Errorf("the fleet did not settle: %v", holders(b.procs))
	}
	victim := b.procs[0]
	mine, err := victim.held()
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*benchDB{}
	for _, d := range b.dbs {
		byName[d.name] = d
	}
	killedAt := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return nil, nil, err
	}
	<-victim.done
	for _, name := range mine {
		if err := fill(byName[name], topic, 1, "t"); err != nil {
			return nil, nil, err
		}
	}
	survivors := b.procs[1:]
	heldAt, drainedAt := map[string]time.Duration{}, map[string]time.Duration{}
	err = poll(2*time.Minute, func() bool {
		hs := holders(survivors)
		for _, name := range mine {
			if _, ok := heldAt[name]; !ok && hs[name] != "" {
				heldAt[name] = time.Since(killedAt)
			}
			if _, ok := drainedAt[name]; !ok {
				if left, err := backlog([]*benchDB{byName[name]}); err == nil && left == 0 {
					drainedAt[name] = time.Since(killedAt)
				}
			}
		}
		return len(heldAt) == len(mine) && len(drainedAt) == len(mine)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("the killed relay's databases %v: held again %v, drained %v", mine, heldAt, drainedAt)
	}
	for _, name := range mine {
		held, drained = append(held, heldAt[name].Seconds()), append(drained, drainedAt[name].Seconds())
	}
	return held, drained, nil
}

// fill enqueues n unkeyed messages of 100 bytes, 1,000 per transaction.
func fill(d *benchDB, topic string, n int, tag string) error {
	ob, err := outbox.New(outbox.Config{Dialect: d.t.d, DisableNotify: true})
	if err != nil {
		return err
	}
	payload := []byte(strings.Repeat("x", 100))
	for start := 0; start < n; start += 1000 {
		msgs := make([]outbox.Message, 0, 1000)
		for i := start; i < min(n, start+1000); i++ {
			msgs = append(msgs, outbox.Message{Topic: topic, Key: fmt.Sprintf("%s/%s-%d", d.name, tag, i), Payload: payload})
		}
		if err := ob.Enqueue(context.Background(), d.db, msgs...); err != nil {
			return fmt.Errorf("fill %s: %w", d.name, err)
		}
	}
	return nil
}

// createDB creates a fresh, migrated MariaDB database or PostgreSQL schema; drop removes it.
func createDB(t target, name string) (*benchDB, error) {
	ctx := context.Background()
	schema := "txbox_benchfleet_" + randomHex(5)
	admin, err := sql.Open(t.driver, t.dsn)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	var dsn, drop string
	switch t.d {
	case dialect.MySQL:
		cfg, err := mysql.ParseDSN(t.dsn)
		if err != nil {
			return nil, err
		}
		cfg.DBName = schema
		dsn, drop = cfg.FormatDSN(), "DROP DATABASE "+schema
		_, err = admin.ExecContext(ctx, "CREATE DATABASE "+schema)
		if err != nil {
			return nil, err
		}
	default:
		u, err := url.Parse(t.dsn)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		dsn, drop = u.String(), "DROP SCHEMA "+schema+" CASCADE"
		if _, err = admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			return nil, err
		}
	}
	dropIt := func() {
		a, err := sql.Open(t.driver, t.dsn)
		if err == nil {
			_, _ = a.ExecContext(context.Background(), drop)
			_ = a.Close()
		}
	}
	db, err := sqlx.Open(t.driver, dsn)
	if err != nil {
		dropIt()
		return nil, err
	}
	db.SetMaxOpenConns(4)
	if err := migrations.Up(ctx, db.DB, t.d); err != nil {
		_ = db.Close()
		dropIt()
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	return &benchDB{name: name, t: target{t.name, t.driver, dsn, t.d}, db: db, drop: dropIt}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// poll calls cond every 50ms until it is true or timeout has passed.
func poll(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", timeout)
		}
		time.Sleep(50 * time.Millisecond) // the poll interval of the measurement
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stats is "median (min–max)".
func stats(xs []float64, format string) string {
	return fmt.Sprintf(format+" ("+format+"–"+format+")", median(xs), slices.Min(xs), slices.Max(xs))
}

func seconds(xs []float64) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%.2f", x)
	}
	return b.String() + "s"
}
