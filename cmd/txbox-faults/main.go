package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"github.com/txbox/txbox/internal/faults"
	"github.com/txbox/txbox/internal/rmqlog"
)

func main() {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "txbox-faults:", err)
		os.Exit(2)
	}
	// A pager that quits must not kill the run with its servers up: writes to a closed stdout fail instead.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	logw := io.Discard
	if opts.verbose {
		logw = os.Stderr
	}
	ok, err := run(ctx, opts, os.Stdout, logw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "txbox-faults:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("txbox-faults", flag.ContinueOnError)
	o := options{strictRecovery: true}
	dbs := fs.String("db", "mariadb,postgres", "databases to run on: mariadb, postgres or both, comma-separated")
	scen := fs.String("scenarios", strings.Join(scenarioNames, ","), "scenarios to run, comma-separated: "+strings.Join(scenarioNames, ", "))
	fs.IntVar(&o.rows, "rows", 20000, "outbox rows of the relay scenarios (conn-reset uses half)")
	fs.IntVar(&o.deliveries, "deliveries", 5000, "keys of the inbox scenario")
	outages := fs.String("outages", "10s,60s", "broker outages of broker-kill, comma-separated")
	fs.IntVar(&o.relayKills, "relay-kills", 3, "SIGKILLs of txbox relay in relay-kill")
	fs.StringVar(&o.stateDir, "state-dir", "", "parent of the private state directory (default: the system's temporary directory)")
	fs.StringVar(&o.txbox, "txbox", "", "txbox binary for relay-kill (default: built from ./cmd/txbox)")
	fs.StringVar(&o.scripts, "scripts", "scripts", "directory of the service scripts (postgres.sh, mariadb.sh, rocketmq.sh)")
	fs.StringVar(&o.rocketLib, "rocketmq-lib", "", "installed RocketMQ jars to use (default: $TXBOX_ROCKETMQ_LIB, else those of the shared services)")
	fs.BoolVar(&o.verbose, "v", false, "write the scripts', servers' and relays' output to stderr")
	fs.BoolVar(&o.keep, "keep", false, "keep the state directory (data and server logs) after the run; the servers are stopped")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: txbox-faults [flags]\n\nRuns txbox against private PostgreSQL, MariaDB and RocketMQ instances that it starts, kills and\ncuts, and prints what held. Exit 0: every invariant held; 1: one broke; 2: the suite could not run.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, d := range strings.Split(*dbs, ",") {
		switch d = strings.TrimSpace(d); d {
		case "mariadb", "mysql":
			o.dbs = append(o.dbs, "mariadb")
		case "postgres", "postgresql":
			o.dbs = append(o.dbs, "postgres")
		case "both":
			o.dbs = append(o.dbs, "mariadb", "postgres")
		default:
			return o, fmt.Errorf("-db %q: want mariadb, postgres or both", d)
		}
	}
	for _, sc := range strings.Split(*scen, ",") {
		if sc = strings.TrimSpace(sc); !slices.Contains(scenarioNames, sc) {
			return o, fmt.Errorf("-scenarios: unknown scenario %q (want %s)", sc, strings.Join(scenarioNames, ", "))
		}
		o.scenarios = append(o.scenarios, sc)
	}
	for _, s := range strings.Split(*outages, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return o, fmt.Errorf("-outages %q: want durations such as 10s,60s", s)
		}
		o.outages = append(o.outages, d)
	}
	switch {
	case o.rows < 100:
		return o, fmt.Errorf("-rows must be at least 100, got %d", o.rows)
	case o.deliveries < 10:
		return o, fmt.Errorf("-deliveries must be at least 10, got %d", o.deliveries)
	case o.relayKills < 1:
		return o, fmt.Errorf("-relay-kills must be at least 1, got %d", o.relayKills)
	}
	if o.rocketLib == "" {
		o.rocketLib = os.Getenv("TXBOX_ROCKETMQ_LIB")
	}
	if o.rocketLib == "" {
		state := os.Getenv("TXBOX_STATE_DIR")
		if state == "" {
			state = "/var/tmp/txbox"
		}
		if _, err := os.Stat(filepath.Join(state, "rocketmq", "lib", ".complete")); err == nil {
			o.rocketLib = filepath.Join(state, "rocketmq", "lib")
		}
	}
	scripts, err := filepath.Abs(o.scripts)
	if err != nil {
		return o, err
	}
	o.scripts = scripts
	return o, nil
}

// run starts the private stack, runs the scenarios and prints their reports to out; it reports whether every
// invariant held. It stops every server it started and removes its state directory whatever happens (a stack
// left behind by a run that was killed is removed by the next run).
func run(ctx context.Context, opts options, out, logw io.Writer) (ok bool, err error) {
	_ = mysql.SetLogger(log.New(logw, "[mysql] ", 0))
	rmqlog.Install(slog.New(slog.NewTextHandler(logw, nil)), slog.LevelWarn)
	if removed, err := faults.CleanStale(opts.scripts, opts.stateDir); err != nil {
		fmt.Fprintf(out, "txbox-faults: cleaning up an earlier run: %v\n", err)
	} else if len(removed) > 0 {
		fmt.Fprintf(out, "txbox-faults: removed what earlier runs left: %s\n", strings.Join(removed, ", "))
	}
	stack, err := faults.NewStack(opts.scripts, opts.stateDir)
	if err != nil {
		return false, err
	}
	stack.RocketMQLib, stack.Log, stack.Keep = opts.rocketLib, logw, opts.keep
	defer func() {
		if cerr := stack.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stop the private servers: %w", cerr))
		}
	}()
	s := &suite{opts: opts, log: logw, stack: stack}
	needBroker := slices.Contains(opts.scenarios, "broker-kill") || slices.Contains(opts.scenarios, "relay-kill")
	fmt.Fprintf(out, "txbox-faults: private servers in %s (PostgreSQL :%d fsync+synchronous_commit on, MariaDB :%d "+
		"flush at commit, RocketMQ :%d/:%d)\n", stack.Dir, stack.PGPort, stack.MySQLPort, stack.NamesrvPort, stack.BrokerPort)
	started := time.Now()
	starts := []faults.Service{}
	for _, d := range opts.dbs {
		if d == "mariadb" {
			starts = append(starts, faults.MariaDB)
		} else {
			starts = append(starts, faults.Postgres)
		}
	}
	if needBroker {
		starts = append(starts, faults.RocketMQ)
	}
	errs := make(chan error, len(starts))
	for _, svc := range starts {
		go func() { errs <- stack.Start(ctx, svc) }()
	}
	for range starts {
		if err := <-errs; err != nil {
			return false, err
		}
	}
	if needBroker {
		env, err := stack.Env(ctx, faults.RocketMQ)
		if err != nil {
			return false, err
		}
		s.namesrv, s.broker = env["TXBOX_ROCKETMQ_NAMESRV"], env["TXBOX_ROCKETMQ_BROKER"]
	}
	fmt.Fprintf(out, "txbox-faults: servers up in %s\n", since(started))
	var reports []*report
	ok = true
	for _, sc := range opts.scenarios {
		for _, d := range opts.dbs {
			t, err := s.target(ctx, d)
			if err != nil {
				return false, err
			}
			var reps []*report
			switch sc {
			case "db-kill-drain":
				reps, err = one(s.dbKillDrain(ctx, t))
			case "db-kill-inbox":
				reps, err = one(s.dbKillInbox(ctx, t))
			case "conn-reset":
				reps, err = one(s.connReset(ctx, t))
			case "broker-kill":
				for _, o := range opts.outages {
					var r *report
					if r, err = s.brokerKill(ctx, t, o); err != nil {
						break
					}
					reps = append(reps, r)
				}
			case "relay-kill":
				reps, err = one(s.relayKill(ctx, t))
			}
			if err != nil {
				return false, fmt.Errorf("%s on %s: %w", sc, d, err)
			}
			for _, r := range reps {
				r.check()
				r.print(out)
				ok = ok && r.ok()
				reports = append(reports, r)
			}
		}
	}
	fmt.Fprintf(out, "\ntxbox-faults: %d reports in %s:", len(reports), since(started))
	for _, r := range reports {
		v := "PASS"
		if !r.ok() {
			v = "FAIL"
		}
		fmt.Fprintf(out, " %s/%s %s;", r.scenario, r.db, v)
	}
	fmt.Fprintln(out)
	return ok, nil
}

func one(r *report, err error) ([]*report, error) {
	if err != nil {
		return nil, err
	}
	return []*report{r}, nil
}
