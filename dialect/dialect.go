package dialect

import (
	"fmt"
	"strings"
)

// Dialect is one database family: what handler code and configuration need to know about it. The SQL txbox runs
// itself is not part of it. The set of implementations is closed: use [MySQL] or [Postgres].
type Dialect interface {
	// Name is "mysql" or "postgres".
	Name() string
	// BindType is the sqlx bind type of the dialect's placeholders (sqlx.QUESTION or sqlx.DOLLAR).
	BindType() int
	// Rebind rewrites a query written with '?' placeholders into the dialect's placeholder style.
	Rebind(query string) string
	// QuoteIdent validates name (see [ValidateIdent]) and returns it quoted for this dialect. A schema-qualified
	// name ("app.txbox_outbox") is quoted part by part.
	QuoteIdent(name string) (string, error)
	// InterpretError wraps a driver error so that errors.Is matches [ErrDuplicateKey], [ErrRetryable] or
	// [ErrConnection] when it is one of those; other errors are returned unchanged. nil stays nil.
	InterpretError(err error) error
	// UpsertSQL renders u for rows rows; see [Upsert].
	UpsertSQL(u Upsert, rows int) (string, error)

	sealed()
}

// MySQL is the dialect for MySQL 8+ and MariaDB 10.6+ through github.com/go-sql-driver/mysql.
var MySQL Dialect = mysqlDialect{}

// Postgres is the dialect for PostgreSQL 13+ through github.com/lib/pq or github.com/jackc/pgx/v5/stdlib.
var Postgres Dialect = postgresDialect{}

// Parse returns the dialect for a configuration name: "mysql" or "mariadb" for [MySQL], "postgres",
// "postgresql" or "pgx" for [Postgres]. Case is ignored.
func Parse(name string) (Dialect, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "mysql", "mariadb":
		return MySQL, nil
	case "postgres", "postgresql", "pgx":
		return Postgres, nil
	}
	return nil, fmt.Errorf("dialect: unknown dialect %q (want mysql, mariadb, postgres or postgresql)", name)
}
