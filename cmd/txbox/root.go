package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"github.com/jmoiron/sqlx"
	"github.com/spf13/cobra"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/migrations"
)

// globals are the flags every command shares, and the secrets they carried (scrub).
type globals struct {
	dialect  string
	dsn      string
	prefix   string
	logLevel string
	timeout  time.Duration
	// where is what open said about the DSN (dsnTarget); scrub holds its secrets.
	where string
	scrub scrubber
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "txbox",
		Short: "Run, inspect and repair txbox outboxes and inboxes",
		Long: `txbox operates the tables of the txbox library: it migrates them, reports backlog and lag, and
(with the relay and dead-letter commands) publishes and repairs messages.

The database comes from --dialect and --dsn, or the TXBOX_DIALECT and TXBOX_DSN environment variables:
  mysql     TXBOX_DSN='user:pass@tcp(127.0.0.1:3306)/app'
  postgres  TXBOX_DSN='postgres://user:pass@127.0.0.1:5432/app?sslmode=disable'`,
		Example: `  export TXBOX_DIALECT=postgres TXBOX_DSN='postgres://app:secret@127.0.0.1:5432/app?sslmode=disable'
  txbox migrate up && txbox status
  txbox relay --namesrv 127.0.0.1:9876 --metrics-addr 127.0.0.1:9090`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Validate shared flags before any command connects anywhere.
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if _, err := dialect.TablesFor(g.prefix); err != nil {
			return usageError{fmt.Errorf("--prefix: %w", err)}
		}
		_, err := g.logger()
		return err
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.dialect, "dialect", os.Getenv("TXBOX_DIALECT"), "database dialect: mysql, mariadb or postgres (env TXBOX_DIALECT)")
	// The DSN usually holds a password: it is read from the environment in open, not as the flag's default,
	// which --help would print.
	pf.StringVar(&g.dsn, "dsn", "", "database DSN (env TXBOX_DSN)")
	pf.StringVar(&g.prefix, "prefix", envOr("TXBOX_PREFIX", dialect.DefaultPrefix), "table prefix of the txbox installation: <prefix>_outbox, <prefix>_inbox, ... (env TXBOX_PREFIX)")
	pf.StringVar(&g.logLevel, "log-level", envOr("TXBOX_LOG_LEVEL", "info"), "log level: debug, info, warn or error (env TXBOX_LOG_LEVEL)")
	pf.DurationVar(&g.timeout, "connect-timeout", 10*time.Second, "how long to wait for the database to answer")

	root.AddCommand(newMigrateCmd(g), newStatusCmd(g), newRelayCmd(g), newDeadCmd(g), newInboxCmd(g))
	root.AddCommand(newTraceCmd(g), newConsoleCmd(g))
	root.AddCommand(newPartitionsCmd(g))
	return root
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (g *globals) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", g.logLevel)}
	}
	// Log records pass on text from drivers and the broker client: secrets are scrubbed from it (the text
	// handler already quotes values with control characters).
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl, ReplaceAttr: g.scrub.replaceAttr})), nil
}

// open connects to the database named by the flags and checks that it answers.
func (g *globals) open(ctx context.Context) (*sqlx.DB, dialect.Dialect, error) {
	if g.dialect == "" {
		return nil, nil, usageError{errors.New("no dialect: pass --dialect (mysql, mariadb, postgres) or set TXBOX_DIALECT")}
	}
	d, err := dialect.Parse(g.dialect)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if g.dsn == "" {
		g.dsn = os.Getenv("TXBOX_DSN")
	}
	if g.dsn == "" {
		return nil, nil, usageError{errors.New("no database: pass --dsn or set TXBOX_DSN")}
	}
	// The DSN is never printed: only where it points, as its driver parses it.
	where, secrets, err := dsnTarget(d, g.dsn)
	g.scrub.add(secrets...)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("--dsn: %w", err)}
	}
	g.where = where
	driver := "mysql"
	if d == dialect.Postgres {
		driver = "pgx"
	}
	db, err := sqlx.Open(driver, g.dsn)
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("--dsn: %w", g.scrub.error(err))}
	}
	pctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("cannot reach the %s database at %s: %w", d.Name(), where, g.scrub.error(err))
	}
	return db, d, nil
}

// openMigrated is open plus migrations.Check: commands that read or write txbox's tables stop here, before any
// work, when the schema is missing or behind this binary.
func (g *globals) openMigrated(ctx context.Context) (*sqlx.DB, dialect.Dialect, error) {
	db, d, err := g.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := migrations.Check(cctx, db.DB, d, migrations.WithPrefix(g.prefix)); err != nil {
		_ = db.Close()
		if errors.Is(err, migrations.ErrNotMigrated) {
			return nil, nil, fmt.Errorf("the %s database at %s is not migrated for this txbox: run `txbox migrate up` first (%w)",
				d.Name(), g.where, err)
		}
		return nil, nil, fmt.Errorf("check the txbox schema: %w", g.scrub.error(err))
	}
	return db, d, nil
}
