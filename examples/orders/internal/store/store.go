package store

import (
	"context"
	"fmt"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/migrations"
)

// Driver is the database/sql driver the example uses for d: go-sql-driver/mysql, or pgx's stdlib (faster
// than lib/pq on these machines).
func Driver(d dialect.Dialect) string {
	if d.Name() == "mysql" {
		return "mysql"
	}
	return "pgx"
}

// Schema is a service's own tables, one statement per entry, for each dialect. Statements must be idempotent.
type Schema struct {
	MySQL    []string
	Postgres []string
}

// Open connects to dsn, waits up to 30 s for the server to answer (containers start in any order), runs
// txbox's migrations and then the service's schema. maxConns bounds the pool.
func Open(ctx context.Context, d dialect.Dialect, dsn string, maxConns int, schema Schema) (*sqlx.DB, error) {
	db, err := sqlx.Open(Driver(d), dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", d.Name(), err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := ping(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := migrations.Up(ctx, db.DB, d); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("txbox migrations: %w", err)
	}
	stmts := schema.Postgres
	if d.Name() == "mysql" {
		stmts = schema.MySQL
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("create the service's tables: %w", err)
		}
	}
	return db, nil
}

func ping(ctx context.Context, db *sqlx.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := db.PingContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("database does not answer: %w", err)
		case <-time.After(500 * time.Millisecond): // retry pacing while a server starts, not a wait for our own work
		}
	}
}
