package migrations

import (
	"bytes"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"testing/fstest"
	"text/template"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// templates holds the migration files, mysql/*.sql and postgres/*.sql, with {{table "outbox"}} and
// {{index "outbox_part"}} where a name derives from the prefix, and the templates the files of a dialect share
// (shared.tmpl).
//
//go:embed mysql/*.sql postgres/*.sql mysql/*.tmpl postgres/*.tmpl
var templates embed.FS

// ErrNotMigrated is returned by Check when txbox's schema is missing or behind this version of txbox.
var ErrNotMigrated = errors.New("migrations: txbox schema is not up to date; run migrations.Up or `txbox migrate up`")

// Option changes which installation a call works on.
type Option func(*options)

type options struct {
	prefix      string
	partitioned bool
}

// WithPrefix names the installation's tables (see dialect.TablesFor); "" and the default are "txbox".
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithPartitioned(true) makes a new installation keep its inbox keys and published outbox rows in tables
// partitioned by time, whose retention is paid by dropping whole partitions (see package inbox, "Partitioned
// retention"). It applies only when Up creates the installation (no txbox migration applied yet): an existing
// installation keeps its layout and converts without downtime with `txbox partitions convert`. With [Files],
// the rendered files create the layout asked for, so use it only for a new installation. Default false (see
// the CHANGELOG for why).
func WithPartitioned(on bool) Option { return func(o *options) { o.partitioned = on } }

func optionsOf(opts []Option) (options, dialect.Tables, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	t, err := dialect.TablesFor(o.prefix)
	if err != nil {
		return o, t, fmt.Errorf("migrations: %w", err)
	}
	return o, t, nil
}

// Files returns the migration files for d, rendered for the prefix, as a flat directory of goose SQL files.
func Files(d dialect.Dialect, opts ...Option) (fs.FS, error) {
	if d == nil {
		return nil, errors.New("migrations: nil dialect")
	}
	o, t, err := optionsOf(opts)
	if err != nil {
		return nil, err
	}
	return render(d, t, o.partitioned)
}

// renderData is what the migration templates see: .Partitioned is true when a new installation is created
// with the partitioned layout.
type renderData struct{ Partitioned bool }

func render(d dialect.Dialect, t dialect.Tables, partitioned bool) (fs.FS, error) {
	names := map[string]string{
		"outbox": t.Outbox, "outbox_dead": t.OutboxDead, "outbox_published": t.OutboxPublished,
		"inbox": t.Inbox, "inbox_attempts": t.InboxAttempts, "inbox_dead": t.InboxDead,
		"effects": t.Effects, "inbox_keys": t.InboxKeys, "partitions": t.Partitions,
		// The claim routine of the partitioned layout (a MySQL procedure, a PostgreSQL function), named like a table.
		"inbox_claim": t.InboxKeys + "_claim",
		"relays":      t.Relays,
	}
	funcs := template.FuncMap{
		"table": func(name string) (string, error) {
			full, ok := names[name]
			if !ok {
				return "", fmt.Errorf("unknown table %q", name)
			}
			return d.QuoteIdent(full)
		},
		// Index names live in the table's schema: not qualified, prefixed with the prefix's own part.
		"index": func(name string) (string, error) { return d.QuoteIdent(t.Base() + "_" + name) },
		// A partition of a partitioned table (PostgreSQL), in the table's schema.
		"partition": func(table, suffix string) (string, error) {
			full, ok := names[table]
			if !ok {
				return "", fmt.Errorf("unknown table %q", table)
			}
			return d.QuoteIdent(full + "_" + suffix)
		},
	}
	dir := d.Name()
	shared, err := template.New("shared").Funcs(funcs).Option("missingkey=error").ParseFS(templates, dir+"/*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("migrations: parse shared templates: %w", err)
	}
	files, err := fs.Glob(templates, dir+"/*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	out := fstest.MapFS{}
	for _, name := range files {
		text, err := fs.ReadFile(templates, name)
		if err != nil {
			return nil, fmt.Errorf("migrations: %w", err)
		}
		tmpl, err := template.Must(shared.Clone()).New(path.Base(name)).Parse(string(text))
		if err != nil {
			return nil, fmt.Errorf("migrations: parse %s: %w", name, err)
		}
		var b bytes.Buffer
		if err := tmpl.Execute(&b, renderData{Partitioned: partitioned}); err != nil {
			return nil, fmt.Errorf("migrations: render %s: %w", name, err)
		}
		out[path.Base(name)] = &fstest.MapFile{Data: b.Bytes(), Mode: 0o444}
	}
	return out, nil
}

// Up applies every pending migration for d. It is idempotent: with nothing pending it changes nothing.
func Up(ctx context.Context, db *sql.DB, d dialect.Dialect, opts ...Option) error {
	m, err := newMigrator(db, d, opts)
	if err != nil {
		return err
	}
	return m.withLock(ctx, func(conn *sql.Conn) error {
		if err := m.s.EnsureSchema(ctx, conn); err != nil {
			return fmt.Errorf("migrations: %w", err)
		}
		if m.o.partitioned {
			// The layout is chosen once, when the installation is created: an existing one converts online.
			current, err := m.p.GetDBVersion(ctx)
			if err != nil {
				return fmt.Errorf("migrations: read version: %w", d.InterpretError(err))
			}
			if current > 0 {
				if m, err = newMigrator(db, d, append(opts, WithPartitioned(false))); err != nil {
					return err
				}
			}
		}
		if _, err := m.p.Up(ctx); err != nil {
			return fmt.Errorf("migrations: up: %w", err)
		}
		return nil
	})
}

// DownTo rolls migrations back until version is the newest applied one; 0 removes every table of the
// installation.
func DownTo(ctx context.Context, db *sql.DB, d dialect.Dialect, version int64, opts ...Option) error {
	m, err := newMigrator(db, d, opts)
	if err != nil {
		return err
	}
	return m.withLock(ctx, func(*sql.Conn) error {
		if _, err := m.p.DownTo(ctx, version); err != nil {
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
func Status(ctx context.Context, db *sql.DB, d dialect.Dialect, opts ...Option) ([]MigrationStatus, error) {
	m, err := newMigrator(db, d, opts)
	if err != nil {
		return nil, err
	}
	// Not p.Status: goose scans its timestamps into time.Time, which fails on MySQL DSNs without parseTime=true.
	// Out-of-order migrations are disabled, so "applied" is "at or below the database's version".
	current, err := m.p.GetDBVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", d.InterpretError(err))
	}
	var out []MigrationStatus
	for _, src := range m.p.ListSources() {
		out = append(out, MigrationStatus{Version: src.Version, Name: path.Base(src.Path), Applied: src.Version <= current})
	}
	return out, nil
}

// Check returns nil when every migration is applied, and an error wrapping ErrNotMigrated otherwise, naming
// the first missing version. Use it at start-up to fail fast on an unmigrated database.
func Check(ctx context.Context, db *sql.DB, d dialect.Dialect, opts ...Option) error {
	st, err := Status(ctx, db, d, opts...)
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

type migrator struct {
	db *sql.DB
	p  *goose.Provider
	s  store.Store
	o  options
}

func newMigrator(db *sql.DB, d dialect.Dialect, opts []Option) (*migrator, error) {
	if db == nil {
		return nil, errors.New("migrations: nil *sql.DB")
	}
	if d == nil {
		return nil, errors.New("migrations: nil dialect")
	}
	o, t, err := optionsOf(opts)
	if err != nil {
		return nil, err
	}
	s, err := store.New(d, t)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	files, err := render(d, t, o.partitioned)
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
		goose.WithTableName(t.Migrations),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return &migrator{db: db, p: p, s: s, o: o}, nil
}

// withLock runs fn while holding the installation's migration lock on a connection of its own. goose's own
// session locker is not enough: Provider.Up first calls HasPending without the lock, and on MySQL (where CREATE
// TABLE commits at once) a second process can see goose's version table before its first row and fail with
// "missing zero version migration". The lock is therefore taken around the whole call. goose runs on other
// connections of the pool meanwhile, so the pool must allow at least two.
func (m *migrator) withLock(ctx context.Context, fn func(conn *sql.Conn) error) (err error) {
	if n := m.db.Stats().MaxOpenConnections; n == 1 {
		return errors.New("migrations: the *sql.DB allows one open connection; migrations need two (one holds the lock)")
	}
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrations: get a connection for the lock: %w", m.s.Dialect().InterpretError(err))
	}
	defer conn.Close()
	if err := m.s.MigrationLock(ctx, conn); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if uerr := m.s.MigrationUnlock(uctx, conn); uerr != nil && err == nil {
			err = fmt.Errorf("migrations: %w", uerr)
		}
	}()
	return fn(conn)
}
