package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
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
	return withLock(ctx, db, d, func() error {
		if _, err := p.Up(ctx); err != nil {
			return fmt.Errorf("migrations: up: %w", err)
		}
		return nil
	})
}

// DownTo rolls migrations back until version is the newest applied one; 0 removes every txbox table.
func DownTo(ctx context.Context, db *sql.DB, d dialect.Dialect, version int64) error {
	p, err := newProvider(db, d)
	if err != nil {
		return err
	}
	return withLock(ctx, db, d, func() error {
		if _, err := p.DownTo(ctx, version); err != nil {
			return fmt.Errorf("migrations: down to %d: %w", version, err)
		}
		return nil
	})
}

// MigrationStatus is one migration's state in a database.
type MigrationStatus struct {
	Version int64
	Name    string // file name, e.g. "00001_outbox.sql"
	Applied bool
}

// Status lists every migration txbox knows, in version order, with whether it has been applied.
func Status(ctx context.Context, db *sql.DB, d dialect.Dialect) ([]MigrationStatus, error) {
	p, err := newProvider(db, d)
	if err != nil {
		return nil, err
	}
	// Not p.Status: goose scans its timestamps into time.Time, which fails on MySQL DSNs without parseTime=true.
	// Out-of-order migrations are disabled, so "applied" is "at or below the database's version".
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", d.InterpretError(err))
	}
	var out []MigrationStatus
	for _, src := range p.ListSources() {
		out = append(out, MigrationStatus{Version: src.Version, Name: path.Base(src.Path), Applied: src.Version <= current})
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
	)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return p, nil
}

// withLock runs fn while holding the dialect's migration lock on a connection of its own. goose's own session
// locker is not enough: Provider.Up first calls HasPending without the lock, and on MySQL (where CREATE TABLE
// commits at once) a second process can see goose's version table before its first row and fail with
// "missing zero version migration". The lock is therefore taken around the whole call. goose runs on other
// connections of the pool meanwhile, so the pool must allow at least two.
func withLock(ctx context.Context, db *sql.DB, d dialect.Dialect, fn func() error) (err error) {
	if n := db.Stats().MaxOpenConnections; n == 1 {
		return errors.New("migrations: the *sql.DB allows one open connection; migrations need two (one holds the lock)")
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrations: get a connection for the lock: %w", d.InterpretError(err))
	}
	defer conn.Close()
	if err := d.MigrationLock(ctx, conn); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if uerr := d.MigrationUnlock(uctx, conn); uerr != nil && err == nil {
			err = fmt.Errorf("migrations: %w", uerr)
		}
	}()
	return fn()
}
