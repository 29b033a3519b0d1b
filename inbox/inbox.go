package inbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/partition"
	"github.com/txbox/txbox/internal/store"
)

// Inbox records the business keys one consumer has processed. It is safe for concurrent use by any number of
// goroutines; several processes may share the tables.
type Inbox struct {
	db  *sqlx.DB
	cfg Config
	d   dialect.Dialect
	s   store.Store
	log *slog.Logger

	lay layout             // the layout of inbox keys, read from <prefix>_partitions
	pm  *partition.Manager // the partitioned keys' manager, made on first use (under lay.mu)

	// Test hooks (see export_test.go).
	receivedAt      func() time.Time // nil: the database clock
	afterPurgeBatch func(n int)      // runs inside each purge batch's transaction, before commit
	testPeriod      time.Duration    // the period a new partitioned table gets; 0: from Retention
	appClock        func() time.Time // the application's clock, as the partition manager sees it; nil: time.Now
	testRefresh     time.Duration    // how long the layout read is trusted; 0: partition.LayoutRefresh
	// testUnpartitioned makes the Inbox record keys in <prefix>_inbox only, whatever the layout: a txbox from
	// before the partitioned layout.
	testUnpartitioned bool
}

// New returns an Inbox on db for cfg. It validates cfg and fills in defaults; the error names the bad field
// and matches ErrInvalidConfig. New runs no SQL: call Check at start-up to fail fast on an unmigrated schema.
func New(db *sqlx.DB, cfg Config) (*Inbox, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sqlx.DB", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if want := driverDialect(db.DriverName()); want != "" && want != cfg.Dialect.Name() {
		return nil, fmt.Errorf("%w: Dialect is %s but the *sqlx.DB uses driver %q", ErrInvalidConfig,
			cfg.Dialect.Name(), db.DriverName())
	}
	t, _ := dialect.TablesFor(cfg.Prefix) // validated by withDefaults
	s, err := store.New(cfg.Dialect, t)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return &Inbox{
		db:  db,
		cfg: cfg,
		d:   cfg.Dialect,
		s:   s,
		log: cfg.Logger.With("component", "txbox.inbox", "consumer", cfg.Consumer),
	}, nil
}

// driverDialect maps the well-known database/sql driver names to a dialect name; "" for others (wrapped or
// instrumented drivers), which are trusted.
func driverDialect(driver string) string {
	switch driver {
	case "mysql":
		return "mysql"
	case "postgres", "pgx", "pgx/v5":
		return "postgres"
	}
	return ""
}

// Config returns the inbox's configuration with defaults filled in.
func (i *Inbox) Config() Config { return i.cfg }

// Check verifies that the database answers and that the inbox tables exist with the columns txbox uses. The
// error matches dialect.ErrSchemaMissing when the migrations have not run, dialect.ErrConnection when the
// database cannot be reached.
func (i *Inbox) Check(ctx context.Context) error {
	if err := i.s.InboxCheckSchema(ctx, i.db); err != nil {
		return fmt.Errorf("inbox: %w", explain(err))
	}
	return nil
}

// rollback ends a transaction that must not commit. database/sql's Rollback takes no context: it runs even
// when the caller's ctx is already cancelled (database/sql has then rolled back already and the call is a
// no-op), and the driver's own I/O timeouts bound it.
func rollback(tx *sqlx.Tx) {
	_ = tx.Rollback()
}

// explain makes a missing schema say how to fix it: the driver's text ("relation does not exist") does not.
func explain(err error) error {
	if err != nil && errors.Is(err, dialect.ErrSchemaMissing) {
		return fmt.Errorf("%w (%w)", err, dialect.ErrSchemaMissing)
	}
	return err
}

// isRetryable tells whether a new transaction may succeed where this one failed.
func isRetryable(err error) bool { return dialect.Classify(err) == dialect.KindRetryable }

// sleepCtx waits d or until ctx ends; it reports whether the full wait happened.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var errNilHandler = errors.New("inbox: nil handler")
