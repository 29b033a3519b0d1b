// Package dialect holds what txbox users need to know about their database family: the two dialects and Parse,
// the upsert builder handler code uses to make its own writes idempotent, the classification of driver errors,
// the limits and checks of keys and identifiers, and the names of an installation's tables.
//
// Two dialects exist: [MySQL] (MySQL 8+ and MariaDB 10.6+, go-sql-driver/mysql) and [Postgres] (PostgreSQL 13+,
// through lib/pq or pgx's database/sql driver). [Parse] maps a name from configuration to one of them.
//
// Errors from either driver can be classified with [Classify] or matched with errors.Is against
// [ErrDuplicateKey], [ErrRetryable], [ErrConnection] and [ErrSchemaMissing] after a Dialect's InterpretError;
// every error txbox returns from the database is already interpreted that way.
//
// One installation's tables all derive from one prefix ([TablesFor]: txbox_outbox, txbox_inbox, ...), which
// migrations, outbox, relay, inbox, metrics and the CLI take as their Prefix setting.
//
// The SQL txbox runs itself is not in this package: it lives behind txbox's internal store, so that it can
// change without breaking anyone.
package dialect
