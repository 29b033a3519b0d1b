package dialect

import (
	"context"
	"database/sql"

	"github.com/jmoiron/sqlx"
)

// DBTX is what txbox needs to run statements: the caller's transaction, a connection or a pool.
// *sql.Tx, *sqlx.Tx, *sql.DB, *sqlx.DB and *sql.Conn all satisfy it.
type DBTX interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ DBTX = (*sql.Tx)(nil)
	_ DBTX = (*sql.DB)(nil)
	_ DBTX = (*sql.Conn)(nil)
	_ DBTX = (*sqlx.Tx)(nil)
	_ DBTX = (*sqlx.DB)(nil)
)
