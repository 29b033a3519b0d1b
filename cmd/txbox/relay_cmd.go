package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/txbox/txbox/metrics"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
)

// relayFlags are txbox relay's own flags.
type relayFlags struct {
	namesrv         []string
	group           string
	batch           int
	workers         int
	minPoll         time.Duration
	maxPoll         time.Duration
	maxAttempts     int
	retention       days
	sendTimeout     time.Duration
	accessKey       string
	secretKey       string
	securityToken   string
	tls             bool
	tlsEnvErr       error // TXBOX_ROCKETMQ_TLS is not a boolean
	namespace       string
	metricsAddr     string
	shutdownTimeout time.Duration
	fleet           fleetFlags // --databases: a relay of a fleet over many databases
}

func newRelayCmd(g *globals) *cobra.Command {
	f := &relayFlags{}
	cmd := &cobra.Command{
		Use:   "relay",
		Short: "Publish the outbox to RocketMQ until stopped",
		Long: `relay claims committed rows of the outbox table, publishes them to RocketMQ and deletes the rows the broker
confirmed (SendOK only). Several relays may run on one database: they never publish the same row at the same
time, and rows with one sharding key reach the broker in enqueue order. A row that keeps failing is moved to the
dead-letter table after --max-attempts (see txbox dead). With --retention, published rows are kept in
<prefix>_outbox_published for that long instead of deleted.

SIGTERM or SIGINT stops it gracefully: batches in flight are finished (published, deleted, committed), the
producer is shut down, and it exits 0. A second signal kills it at once; rows of an unfinished batch stay in the
outbox and are published again (the consumers' inboxes absorb the duplicates).

It refuses to start on an unmigrated schema or when no name server answers. With --metrics-addr it serves
  /metrics  Prometheus: txbox_relay_* counters and batch durations, txbox_outbox_* and txbox_inbox_* backlog
            gauges (read from the database at each scrape), Go and process metrics
  /healthz  200 while the process runs
  /readyz   200 when the database answers and the producer is started; 503 otherwise

With --databases FILE (the databases file of txbox trace and console) the relay drains many databases, both
dialects mixed, and shares them with every other relay given the same file, without a coordinator: each
database is drained by the one relay that holds its drain lease (a lock of the database server, which ends with
the relay's connection), the relays even out the databases among themselves (--max-held caps this relay's
share), and a relay that dies leaves its databases to the others within a few seconds. The file is read again
on SIGHUP and whenever it changes: new databases are looked at at once, removed ones are let go and never
touched again. A database that cannot be reached stalls only itself; /metrics shows it
(txbox_fleet_database_up{database}) and txbox status --databases FILE says why. Every relay of a fleet needs its
own --relay-id (the default is unique per process).

Access keys and security tokens for ACL-enabled clusters are better passed through the environment than on the
command line; they are never printed. --tls encrypts the connections to the name servers and brokers, but
rocketmq-client-go does not verify the broker's certificate: it protects against eavesdropping, not against an
impostor on the network path.`,
		Example: `  export TXBOX_DIALECT=mysql TXBOX_DSN='app:secret@tcp(127.0.0.1:3306)/app'
  txbox relay --namesrv 127.0.0.1:9876 --group orders-relay --metrics-addr 127.0.0.1:9090

  # one relay of a fleet over the databases of a file (run several, with the same file)
  txbox relay --databases databases.yaml --namesrv 127.0.0.1:9876 --metrics-addr 127.0.0.1:9090

  # ACL cluster, credentials from the environment
  TXBOX_ROCKETMQ_NAMESRV=10.0.0.5:9876,10.0.0.6:9876 TXBOX_ROCKETMQ_ACCESS_KEY=ak TXBOX_ROCKETMQ_SECRET_KEY=sk \
    txbox relay --namespace prod --workers 4 --batch 1000`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRelay(cmd, g, f) },
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.namesrv, "namesrv", splitList(envOr("TXBOX_ROCKETMQ_NAMESRV", "")),
		"RocketMQ name servers, literal IP:port, comma-separated (env TXBOX_ROCKETMQ_NAMESRV)")
	fl.StringVar(&f.group, "group", envOr("TXBOX_ROCKETMQ_GROUP", rocketmq.DefaultGroup), "producer group (env TXBOX_ROCKETMQ_GROUP)")
	fl.IntVar(&f.batch, "batch", 500, "most rows one batch claims (1 to 10000)")
	fl.IntVar(&f.workers, "workers", 2, "batch loops, each on a database connection of its own (1 to 64)")
	fl.DurationVar(&f.minPoll, "min-poll-interval", 10*time.Millisecond, "wait after an empty pass while messages flow")
	fl.DurationVar(&f.maxPoll, "max-poll-interval", time.Second, "longest wait between polls of a quiet outbox")
	fl.IntVar(&f.maxAttempts, "max-attempts", 16, "failed publishes before a row moves to the dead-letter table")
	fl.Var(&f.retention, "retention", "keep published rows in <prefix>_outbox_published this long (e.g. 7d, 36h) instead of deleting them; 0 deletes at once")
	fl.DurationVar(&f.sendTimeout, "send-timeout", rocketmq.DefaultSendTimeout, "timeout of one send attempt to the broker")
	// Credentials are read from the environment after parsing (fromEnv), never as flag defaults: --help prints
	// defaults.
	fl.StringVar(&f.accessKey, "access-key", "", "ACL access key (env TXBOX_ROCKETMQ_ACCESS_KEY)")
	fl.StringVar(&f.secretKey, "secret-key", "", "ACL secret key (env TXBOX_ROCKETMQ_SECRET_KEY)")
	fl.StringVar(&f.securityToken, "security-token", "", "ACL security token, with the access and secret keys (env TXBOX_ROCKETMQ_SECURITY_TOKEN)")
	var tlsDefault bool
	if v := os.Getenv("TXBOX_ROCKETMQ_TLS"); v != "" {
		tlsDefault, f.tlsEnvErr = strconv.ParseBool(v)
	}
	fl.BoolVar(&f.tls, "tls", tlsDefault, "connect to the name servers and brokers over TLS (env TXBOX_ROCKETMQ_TLS=true)")
	fl.StringVar(&f.namespace, "namespace", envOr("TXBOX_ROCKETMQ_NAMESPACE", ""), "RocketMQ namespace prefixed to topics and group (env TXBOX_ROCKETMQ_NAMESPACE)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", envOr("TXBOX_METRICS_ADDR", ""), "serve /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9090 (env TXBOX_METRICS_ADDR)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "after the last batch, how long the producer's shutdown may wait for sends in flight")
	f.fleet.register(fl)
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// validate checks what can be checked without connecting, so that bad flags exit 2 before any work.
func (f *relayFlags) validate() error {
	switch {
	case f.tlsEnvErr != nil:
		return usageError{fmt.Errorf("TXBOX_ROCKETMQ_TLS: want true or false: %w", f.tlsEnvErr)}
	case len(f.namesrv) == 0:
		return usageError{errors.New("no name server: pass --namesrv 127.0.0.1:9876 or set TXBOX_ROCKETMQ_NAMESRV")}
	case f.batch < 1 || f.batch > 10000:
		return usageError{fmt.Errorf("--batch must be between 1 and 10000, got %d", f.batch)}
	case f.workers < 1 || f.workers > 64:
		return usageError{fmt.Errorf("--workers must be between 1 and 64, got %d", f.workers)}
	case f.minPoll < relay.MinPollIntervalFloor || f.maxPoll < relay.MinPollIntervalFloor:
		return usageError{fmt.Errorf("--min-poll-interval and --max-poll-interval must be at least %s", relay.MinPollIntervalFloor)}
	case f.maxPoll < f.minPoll:
		return usageError{fmt.Errorf("--max-poll-interval (%s) must not be less than --min-poll-interval (%s)", f.maxPoll, f.minPoll)}
	case f.maxAttempts < 1 || f.maxAttempts > 1000:
		return usageError{fmt.Errorf("--max-attempts must be between 1 and 1000, got %d", f.maxAttempts)}
	case f.retention < 0:
		return usageError{fmt.Errorf("--retention must not be negative, got %s", time.Duration(f.retention))}
	case f.sendTimeout < time.Millisecond:
		return usageError{fmt.Errorf("--send-timeout must be at least 1ms, got %s", f.sendTimeout)}
	case (f.accessKey == "") != (f.secretKey == ""):
		return usageError{errors.New("--access-key and --secret-key go together")}
	case f.securityToken != "" && f.accessKey == "":
		return usageError{errors.New("--security-token needs --access-key and --secret-key")}
	case f.shutdownTimeout <= 0:
		return usageError{fmt.Errorf("--shutdown-timeout must be positive, got %s", f.shutdownTimeout)}
	}
	for _, ns := range f.namesrv {
		host, port, err := net.SplitHostPort(ns)
		if err != nil || net.ParseIP(host) == nil || port == "" {
			// rocketmq-client-go does not resolve host names.
			return usageError{fmt.Errorf("--namesrv %q: want a literal IP:port such as 127.0.0.1:9876", ns)}
		}
	}
	if f.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.metricsAddr); err != nil {
			return usageError{fmt.Errorf("--metrics-addr %q: want host:port, e.g. 127.0.0.1:9090", f.metricsAddr)}
		}
	}
	return nil
}

// reachNameServer fails fast when no name server accepts a TCP connection: the client itself would only log
// route errors at every send and keep the rows in the outbox, which looks like a stuck relay.
func reachNameServer(ctx context.Context, addrs []string, timeout time.Duration) error {
	var errs []error
	for _, a := range addrs {
		dctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := (&net.Dialer{}).DialContext(dctx, "tcp", a)
		cancel()
		if err == nil {
			_ = c.Close()
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("cannot reach any RocketMQ name server (%s): %w", strings.Join(addrs, ", "), errors.Join(errs...))
}

func runRelay(cmd *cobra.Command, g *globals, f *relayFlags) error {
	f.fromEnv()
	g.scrub.add(f.secretKey, f.securityToken)
	if err := f.validate(); err != nil {
		return err
	}
	if err := f.fleet.validate(cmd); err != nil {
		return err
	}
	log, err := g.logger()
	if err != nil {
		return err
	}
	if f.fleet.databases != "" {
		return runFleet(cmd, g, f, log)
	}
	w, err := wireRelay(cmd.Context(), g, f, log)
	if err != nil {
		return err
	}
	return w.run(cmd.Context())
}

// fromEnv fills the credentials from the environment. They are read after parsing, never as flag defaults:
// --help prints defaults.
func (f *relayFlags) fromEnv() {
	if f.accessKey == "" {
		f.accessKey = os.Getenv("TXBOX_ROCKETMQ_ACCESS_KEY")
	}
	if f.secretKey == "" {
		f.secretKey = os.Getenv("TXBOX_ROCKETMQ_SECRET_KEY")
	}
	if f.securityToken == "" {
		f.securityToken = os.Getenv("TXBOX_ROCKETMQ_SECURITY_TOKEN")
	}
}

// wiredRelay is a relay ready to run: the database, the producer, the metrics and the health server.
type wiredRelay struct {
	f       *relayFlags
	log     *slog.Logger
	db      *sqlx.DB
	dialect string
	srv     *server // nil without --metrics-addr
	pub     *rocketmq.Publisher
	r       *relay.Relay
	// started is true while the producer is up and not shutting down (/readyz).
	started   atomic.Bool
	published atomic.Int64
	scrub     *scrubber // keeps secrets out of /readyz
}

// wireRelay connects to the database (migrated) and the name server, registers the metrics, starts the health
// server and the producer, and builds the relay. On error it releases what it acquired.
func wireRelay(ctx context.Context, g *globals, f *relayFlags, log *slog.Logger) (_ *wiredRelay, err error) {
	db, d, err := g.openMigrated(ctx)
	if err != nil {
		return nil, err
	}
	w := &wiredRelay{f: f, log: log, db: db, dialect: d.Name(), scrub: &g.scrub}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	// Workers, the PostgreSQL listener, and scrapes/readiness probes.
	db.SetMaxOpenConns(f.workers + 3)
	if err := reachNameServer(ctx, f.namesrv, g.timeout); err != nil {
		return nil, err
	}

	reg := prometheus.NewRegistry()
	rm, err := metrics.NewRelay(reg)
	if err != nil {
		return nil, err
	}
	if err := metrics.RegisterBacklog(reg, db, d, g.prefix); err != nil {
		return nil, err
	}
	if err := metrics.RegisterPartitions(reg, db, d, g.prefix); err != nil {
		return nil, err
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if f.metricsAddr != "" {
		w.srv, err = startServer(f.metricsAddr, reg, w.ready, log)
		if err != nil {
			return nil, err
		}
	}

	w.pub, err = rocketmq.New(f.publisherConfig(log))
	if err != nil {
		return nil, fmt.Errorf("start the RocketMQ producer: %w", err)
	}
	w.r, err = relay.New(db, relay.Config{
		Dialect:         d,
		Prefix:          g.prefix,
		Publisher:       w.pub,
		BatchSize:       f.batch,
		Workers:         f.workers,
		MinPollInterval: f.minPoll,
		MaxPollInterval: f.maxPoll,
		MaxAttempts:     f.maxAttempts,
		Retention:       time.Duration(f.retention),
		Logger:          log,
		OnBreaker:       rm.ObserveBreaker,
		OnBatch: func(b relay.BatchInfo) {
			rm.ObserveBatch(b)
			if b.Err == nil {
				w.published.Add(int64(b.Published))
			}
		},
	})
	if err != nil {
		return nil, usageError{err}
	}
	return w, nil
}

// ready is /readyz: the producer is started and the database answers.
func (w *wiredRelay) ready(ctx context.Context) error {
	if !w.started.Load() {
		return errors.New("publisher not started")
	}
	if err := w.db.PingContext(ctx); err != nil {
		return fmt.Errorf("database: %w", w.scrub.error(err))
	}
	return nil
}

// run publishes until ctx ends, then stops in order: the batches in flight are committed, the producer shuts
// down (waiting up to --shutdown-timeout for sends in flight), the health server and the database close.
func (w *wiredRelay) run(ctx context.Context) error {
	defer w.close()
	w.started.Store(true)
	w.log.Info("txbox relay: started", "dialect", w.dialect, "namesrv", strings.Join(w.f.namesrv, ","),
		"group", w.f.group, "workers", w.f.workers, "batch", w.f.batch)

	runErr := w.r.Run(ctx) // returns once ctx ends and the batches in flight are committed
	w.started.Store(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.f.shutdownTimeout)
	defer cancel()
	shutErr := w.pub.Shutdown(sctx)
	w.pub = nil
	if runErr != nil {
		return fmt.Errorf("relay stopped: %w", w.scrub.error(runErr))
	}
	if shutErr != nil {
		return shutErr
	}
	w.log.Info("txbox relay: stopped", "published", w.published.Load())
	return nil
}

// close releases what wireRelay acquired and run did not release yet.
func (w *wiredRelay) close() {
	if w.pub != nil {
		_ = w.pub.Shutdown(context.Background())
	}
	if w.srv != nil {
		w.srv.close(w.log)
	}
	_ = w.db.Close()
}
