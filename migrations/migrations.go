package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/txbox/txbox/dialect"
)

// VersionTable is the table in which txbox records its applied migrations.
const VersionTable = "txbox_migrations"

// FS holds the migration files: mysql/*.sql and postgres/*.sql.
//
//go:embed mysql/*.sql postgres/*.sql
var FS embed.FS

// ErrNotMigrated is returned by Check when txbox's schema is missing or behind this version of txbox.
var ErrNotMigrated = errors.New("migrations: txbox schema is not up to date; run migrations.Up or `txbox migrate up`")

// Files returns the migration files for d, as a flat directory of goose SQL files.
func Files(d dialect.Dialect) (fs.FS, error) {
	if d == nil {
		return nil, errors.New("migrations: nil dialect")
	}
	return fs.Sub(FS, d.Name())
}

// Up applies every pending migration for d. It is idempotent: with nothing pending it changes nothing.
func Up(ctx context.Context, db *sql.DB, d dialect.Dialect) error {
	p, err := newProvider(db, d)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations: up: %w", err)
	}
	return nil
}

// DownTo rolls migrations back until version is the newest applied one; 0 removes every txbox table.
func DownTo(ctx context.Context, db *sql.DB, d dialect.Dialect, version int64) error {
	p, err := newProvider(db, d)
	if err != nil {
		return err
	}
	if _, err := p.DownTo(ctx, version); err != nil {
		return fmt.Errorf("migrations: down to %d: %w", version, err)
	}
	return nil
}

// MigrationStatus is one migration's state in a database.
type MigrationStatus struct {
	Version   int64
	Name      string // file name, e.g. "00001_outbox.sql"
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// Status lists every migration txbox knows, in version order, with whether it has been applied.
func Status(ctx context.Context, db *sql.DB, d dialect.Dialect) ([]MigrationStatus, error) {
	p, err := newProvider(db, d)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		ms := MigrationStatus{Version: s.Source.Version, Applied: s.State == goose.StateApplied, AppliedAt: s.AppliedAt}
		if s.Source.Path != "" {
			ms.Name = s.Source.Path
		}
		out = append(out, ms)
	}
	return out, nil
}

// Check returns nil when every migration is applied, and an error wrapping ErrNotMigrated otherwise, naming
// the first missing version. Use it at start-up to fail fast on an unmigrated database.
func Check(ctx context.Context, db *sql.DB, d dialect.Dialect) error {
	st, err := Status(ctx, db, d)
	if err != nil {
		return err
	}
	for _, s := range st {
		if !s.Applied {
			return fmt.Errorf("%w (migration %d %s is not applied)", ErrNotMigrated, s.Version, s.Name)
		}
	}
	return nil
}

func newProvider(db *sql.DB, d dialect.Dialect) (*goose.Provider, error) {
	if db == nil {
		return nil, errors.New("migrations: nil *sql.DB")
	}
	files, err := Files(d)
	if err != nil {
		return nil, err
	}
	var gd goose.Dialect
	switch d.Name() {
	case "mysql":
		gd = goose.DialectMySQL
	case "postgres":
		gd = goose.DialectPostgres
	default:
		return nil, fmt.Errorf("migrations: unsupported dialect %q", d.Name())
	}
	p, err := goose.NewProvider(gd, db, files,
		goose.WithTableName(VersionTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(sessionLocker{d}),
	)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// sessionLocker adapts the dialect's migration lock to goose's lock.SessionLocker.
type sessionLocker struct{ d dialect.Dialect }

func (l sessionLocker) SessionLock(ctx context.Context, c *sql.Conn) error {
	return l.d.MigrationLock(ctx, c)
}
func (l sessionLocker) SessionUnlock(ctx context.Context, c *sql.Conn) error {
	return l.d.MigrationUnlock(ctx, c)
}
