package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/spf13/cobra"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/internal/rmqquery"
)

// sourceFlags are the flags of the commands that read a set of databases (and the broker): trace, console.
type sourceFlags struct {
	databases string
	namesrv   []string
	limit     int
}

func (f *sourceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.databases, "databases", envOr("TXBOX_DATABASES", ""),
		"YAML file naming the databases, with ${ENV} in DSNs (env TXBOX_DATABASES); instead of --dialect/--dsn")
	fl.StringSliceVar(&f.namesrv, "namesrv", nil,
		"RocketMQ name servers (literal IP:port): also show the broker's stored copies of each key")
	fl.IntVar(&f.limit, "limit", console.DefaultTraceLimit, "most rows read per table of each database")
}

// opened are the databases of a command's flags, with their pools.
type opened struct {
	entries []databaseEntry
	dbs     []*sqlx.DB
}

func (o *opened) close() {
	for _, db := range o.dbs {
		_ = db.Close()
	}
}

// build validates the flags and returns a console over their databases (cfg's other fields as given), and
// the databases, whose pools the caller closes.
func (f *sourceFlags) build(cmd *cobra.Command, g *globals, cfg console.Config) (*console.Console, *opened, error) {
	if f.limit < 1 || f.limit > console.MaxPageSize {
		return nil, nil, usageError{fmt.Errorf("--limit must be between 1 and %d, got %d", console.MaxPageSize, f.limit)}
	}
	for _, ns := range f.namesrv {
		if host, _, err := net.SplitHostPort(ns); err != nil || net.ParseIP(host) == nil {
			return nil, nil, usageError{fmt.Errorf("--namesrv %q: want a literal IP:port such as 127.0.0.1:9876", ns)}
		}
	}
	pf := cmd.Root().PersistentFlags()
	entries, err := g.databases(f.databases, pf.Changed("dsn") || pf.Changed("dialect"))
	if err != nil {
		return nil, nil, err
	}
	o := &opened{entries: entries}
	for _, e := range entries {
		db, err := openEntry(e)
		if err != nil {
			o.close()
			return nil, nil, err
		}
		o.dbs = append(o.dbs, db)
		cfg.Databases = append(cfg.Databases, console.Database{Name: e.Name, DB: db, Dialect: e.Dialect, Prefix: e.Prefix})
	}
	if len(f.namesrv) > 0 {
		cfg.Broker = &rmqquery.Client{NameServers: f.namesrv, Timeout: g.timeout}
	}
	cfg.TraceLimit = f.limit
	c, err := console.New(cfg)
	if err != nil {
		o.close()
		return nil, nil, usageError{err}
	}
	return c, o, nil
}

func newTraceCmd(g *globals) *cobra.Command {
	f := &sourceFlags{}
	var exact, asJSON bool
	cmd := &cobra.Command{
		Use:   "trace KEY",
		Short: "Show where the messages with a business key are, across databases and the broker",
		Long: `trace answers "was it sent, did the consumer get it, when, and if not, where is it stuck?" for a business
key. It reads every database it is given (--databases FILE, or --dialect/--dsn) and prints one timeline:

  enqueued       written to an outbox (the enqueuing transaction's time: its start on PostgreSQL)
  scheduled      in the outbox, due later (DeliverAt)
  waiting        in the outbox, due, not published yet (no relay running?)
  retrying       in the outbox after failed publishes: the count, the last error, the next attempt
  published      confirmed by the broker (only when the relay keeps published rows: txbox relay --retention)
  dead-lettered  given up by the relay (txbox dead requeue --outbox brings it back)
  stored         a copy on the broker (with --namesrv): queue, offset, message id
  processed      recorded by an inbox consumer: its effects committed; redeliveries are absorbed
  failing        a consumer's handler failed on it: the count and the last error
  parked         in a consumer's dead-letter table (txbox dead requeue --inbox sends it again)

KEY also covers the keys under it (KEY/...), as inbox.Key builds them: "12345" finds "12345/created" and
"12345/payment" in every service's tables. --exact traces KEY alone. Events that need an operator are listed
again at the end. Keys and error texts are printed with control characters escaped (\x1b...), so that a key
cannot drive the terminal. A database (or the broker) that cannot be read is reported and the others are still
traced; the exit status is then 1.`,
		Example: `  txbox trace --databases databases.yaml 12345
  txbox trace --databases databases.yaml --namesrv 127.0.0.1:9876 12345/created --exact
  txbox trace 12345 --json | jq '.events[] | select(.attention)'`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("want one business key, got %d arguments", len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, dbs, err := f.build(cmd, g, console.Config{ReadOnly: true})
			if err != nil {
				return err
			}
			defer dbs.close()
			tr, err := c.Trace(cmd.Context(), args[0], exact)
			if errors.Is(err, console.ErrInvalidRequest) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(tr); err != nil {
					return err
				}
			} else if err := console.WriteText(out, tr); err != nil {
				return err
			}
			var failed []string
			for _, s := range tr.Sources {
				if s.Error != "" {
					failed = append(failed, console.Printable(s.Name))
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("could not read %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&exact, "exact", false, "trace KEY alone, not the keys under it")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the trace as JSON")
	return cmd
}
