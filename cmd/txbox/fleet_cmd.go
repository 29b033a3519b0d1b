package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/txbox/txbox/metrics"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/fleet"
	"github.com/txbox/txbox/relay/rocketmq"
)

// fleetFlags are txbox relay's flags for a set of databases (package relay/fleet).
type fleetFlags struct {
	databases string
	id        string
	maxHeld   int
	probe     time.Duration
	heartbeat time.Duration
	reload    time.Duration
}

func (ff *fleetFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&ff.databases, "databases", envOr("TXBOX_DATABASES", ""),
		"YAML file naming the databases to drain, shared with the other relays given the same file (env TXBOX_DATABASES); instead of --dialect/--dsn")
	fl.StringVar(&ff.id, "relay-id", envOr("TXBOX_RELAY_ID", ""),
		"with --databases: this relay's name in the fleet, unique per relay (env TXBOX_RELAY_ID; default host-pid-random)")
	fl.IntVar(&ff.maxHeld, "max-held", 0, "with --databases: most databases this relay drains at once (0: its fair share, no cap)")
	fl.DurationVar(&ff.probe, "probe-interval", fleet.DefaultProbeInterval,
		"with --databases: how often each database this relay does not drain is looked at")
	fl.DurationVar(&ff.heartbeat, "heartbeat-interval", fleet.DefaultHeartbeatInterval,
		"with --databases: how often the relay checks the lease of each database it drains")
	fl.DurationVar(&ff.reload, "reload-interval", time.Second,
		"with --databases: how often the file is checked for changes (SIGHUP reloads it at once)")
}

// validate refuses the fleet's flags without --databases, and bad values (exit 2).
func (ff *fleetFlags) validate(cmd *cobra.Command) error {
	if ff.databases == "" {
		for _, name := range []string{"relay-id", "max-held", "probe-interval", "heartbeat-interval", "reload-interval"} {
			if cmd.Flags().Changed(name) {
				return usageError{fmt.Errorf("--%s needs --databases", name)}
			}
		}
		return nil
	}
	switch {
	case ff.maxHeld < 0:
		return usageError{fmt.Errorf("--max-held must not be negative, got %d", ff.maxHeld)}
	case ff.reload < 10*time.Millisecond:
		return usageError{fmt.Errorf("--reload-interval must be at least 10ms, got %s", ff.reload)}
	}
	return nil
}

// fleetRun is a relay over a set of databases, wired: the producer, the fleet, its metrics and the pools.
type fleetRun struct {
	g   *globals
	f   *relayFlags
	log *slog.Logger
	pub *rocketmq.Publisher
	fl  *fleet.Fleet
	fm  *metrics.Fleet
	srv *server
	// open are the entries of the set in use and their pools, by name; pools holds every pool not closed yet.
	open      map[string]openedEntry
	pools     map[*sqlx.DB]bool
	stat      fileStamp
	started   atomic.Bool
	published atomic.Int64
}

type openedEntry struct {
	e  databaseEntry
	db *sqlx.DB
}

// fileStamp is what the file poll compares.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{st.ModTime(), st.Size()}
}

// runFleet is txbox relay --databases: a relay of a fleet that shares the file's databases with the other
// relays given the same file, until ctx ends.
func runFleet(cmd *cobra.Command, g *globals, f *relayFlags, log *slog.Logger) error {
	ctx := cmd.Context()
	pf := cmd.Root().PersistentFlags()
	stamp := stampOf(f.fleet.databases)
	entries, err := g.databases(f.fleet.databases, pf.Changed("dsn") || pf.Changed("dialect"))
	if err != nil {
		return err
	}
	if err := reachNameServer(ctx, f.namesrv, g.timeout); err != nil {
		return err
	}
	r := &fleetRun{g: g, f: f, log: log, open: map[string]openedEntry{}, pools: map[*sqlx.DB]bool{}, stat: stamp}
	defer r.close()
	set, next, err := r.prepare(entries)
	if err != nil {
		return err
	}
	if r.pub, err = rocketmq.New(f.publisherConfig(log)); err != nil {
		return fmt.Errorf("start the RocketMQ producer: %w", err)
	}
	r.fl, err = fleet.New(fleet.Config{
		// The single-database relay's settings (wireRelay), for each database.
		Relay: relay.Config{
			Publisher:       r.pub,
			BatchSize:       f.batch,
			Workers:         f.workers,
			MinPollInterval: f.minPoll,
			MaxPollInterval: f.maxPoll,
			MaxAttempts:     f.maxAttempts,
			Retention:       time.Duration(f.retention),
		},
		ID:                f.fleet.id,
		MaxHeld:           f.fleet.maxHeld,
		ProbeInterval:     f.fleet.probe,
		HeartbeatInterval: f.fleet.heartbeat,
		Timeout:           g.timeout,
		Logger:            log,
		OnBatch: func(database string, b relay.BatchInfo) {
			r.fm.ObserveBatch(database, b)
			if b.Err == nil {
				r.published.Add(int64(b.Published))
			}
		},
	})
	if err != nil {
		return usageError{err}
	}
	reg := prometheus.NewRegistry()
	if r.fm, err = metrics.NewFleet(reg, r.fl); err != nil {
		return err
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if f.metricsAddr != "" {
		if r.srv, err = startServer(f.metricsAddr, reg, r.ready, log); err != nil {
			return err
		}
	}
	if err := r.fl.Update(ctx, set); err != nil {
		return usageError{err}
	}
	r.commit(next, set)
	return r.run(ctx)
}

// prepare makes the fleet's set from entries: the pools of entries that did not change are kept, the others
// opened (and remembered in r.pools, so that close closes them whatever happens next).
func (r *fleetRun) prepare(entries []databaseEntry) ([]fleet.Database, map[string]openedEntry, error) {
	set := make([]fleet.Database, 0, len(entries))
	next := map[string]openedEntry{}
	for _, e := range entries {
		o, ok := r.open[e.Name]
		if !ok || o.e != e {
			db, err := openEntry(e)
			if err != nil {
				return nil, nil, err
			}
			r.pools[db] = true
			o = openedEntry{e, db}
		}
		next[e.Name] = o
		set = append(set, fleet.Database{Name: e.Name, Dialect: e.Dialect, Prefix: e.Prefix, DB: o.db})
	}
	return set, next, nil
}

// commit makes next the set in use, once the fleet has it: the pools it no longer uses are closed (the fleet
// let go of them before Update returned), and the relay counters of the databases registered.
func (r *fleetRun) commit(next map[string]openedEntry, set []fleet.Database) {
	r.open = next
	used := map[*sqlx.DB]bool{}
	for _, o := range next {
		used[o.db] = true
	}
	for db := range r.pools {
		if !used[db] {
			_ = db.Close()
			delete(r.pools, db)
		}
	}
	for _, d := range set {
		if _, err := r.fm.Relay(d.Name); err != nil {
			// Its batches are counted in txbox_fleet_unobserved_batches_total instead.
			r.log.Error("txbox relay: the relay metrics of a database cannot be registered", "database", d.Name, "error", err)
		}
	}
}

// ready is /readyz: the producer is started and the fleet runs. Databases that are down do not make the relay
// unready (the others are drained): /metrics and txbox status show them.
func (r *fleetRun) ready(context.Context) error {
	if !r.started.Load() {
		return errors.New("publisher not started")
	}
	return nil
}

// run drains until ctx ends, reloading the file on SIGHUP and when it changes; then it stops the fleet (every
// relay finishes its batches in flight), shuts the producer down and closes the pools.
func (r *fleetRun) run(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fctx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFleet()
	done := make(chan error, 1)
	go func() { done <- r.fl.Run(fctx) }()
	r.started.Store(true)
	r.log.Info("txbox relay: started", "relay", r.fl.ID(), "databases", len(r.open), "namesrv", strings.Join(r.f.namesrv, ","),
		"group", r.f.group, "workers", r.f.workers, "batch", r.f.batch, "max_held", r.f.fleet.maxHeld)
	tick := time.NewTicker(r.f.fleet.reload)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			r.log.Info("txbox relay: SIGHUP, reloading the databases file", "file", r.f.fleet.databases)
			r.reload(ctx)
		case <-tick.C:
			if st := stampOf(r.f.fleet.databases); st != r.stat {
				r.reload(ctx)
			}
		}
	}
	stopFleet()
	runErr := <-done
	r.started.Store(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.f.shutdownTimeout)
	defer cancel()
	shutErr := r.pub.Shutdown(sctx)
	r.pub = nil
	if runErr != nil {
		return fmt.Errorf("relay stopped: %w", r.g.scrub.error(runErr))
	}
	if shutErr != nil {
		return shutErr
	}
	r.log.Info("txbox relay: stopped", "published", r.published.Load())
	return nil
}

// reload reads the file again and gives the fleet its new set; a file that cannot be read or parsed leaves the
// set as it was (and is read again when it changes).
func (r *fleetRun) reload(ctx context.Context) {
	r.stat = stampOf(r.f.fleet.databases)
	entries, err := r.g.databases(r.f.fleet.databases, false)
	var set []fleet.Database
	var next map[string]openedEntry
	if err == nil {
		set, next, err = r.prepare(entries)
	}
	if err == nil {
		err = r.fl.Update(ctx, set)
	}
	if err != nil {
		r.log.Error("txbox relay: databases file not reloaded; the databases stay as they were", "file", r.f.fleet.databases,
			"error", r.g.scrub.error(err))
		if ctx.Err() == nil {
			r.commit(r.open, nil) // closes the pools opened for nothing
		}
		return
	}
	r.commit(next, set)
	names := make([]string, len(set))
	for i, d := range set {
		names[i] = d.Name
	}
	r.log.Info("txbox relay: databases reloaded", "databases", strings.Join(names, ","))
}

// close releases what runFleet acquired and run did not release yet.
func (r *fleetRun) close() {
	if r.pub != nil {
		_ = r.pub.Shutdown(context.Background())
	}
	if r.srv != nil {
		r.srv.close(r.log)
	}
	for db := range r.pools {
		_ = db.Close()
	}
}

// publisherConfig is the RocketMQ producer's configuration from the flags.
func (f *relayFlags) publisherConfig(log *slog.Logger) rocketmq.Config {
	return rocketmq.Config{
		NameServers: f.namesrv,
		Group:       f.group,
		Credentials: rocketmq.Credentials{AccessKey: f.accessKey, SecretKey: f.secretKey, SecurityToken: f.securityToken},
		TLS:         f.tls,
		Namespace:   f.namespace,
		SendTimeout: f.sendTimeout,
		Logger:      log,
	}
}
