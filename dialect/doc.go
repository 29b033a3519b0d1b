// Package dialect holds everything in txbox that differs between MySQL/MariaDB and PostgreSQL: SQL text,
// placeholders, timestamp handling, error classification, identifier quoting, migration locking and the upsert
// builder handler code uses to make its own writes idempotent.
//
// The rest of txbox contains no SQL. Components call a [Dialect]'s methods, which take a [DBTX] (the caller's
// transaction, a connection or a pool) and run their statements themselves, so each database can use the
// statements that suit it best: PostgreSQL claims and returns rows in one statement, MySQL selects and then
// updates.
//
// Two dialects exist: [MySQL] (MySQL 8+ and MariaDB 10.6+, go-sql-driver/mysql) and [Postgres] (PostgreSQL 13+,
// through lib/pq or pgx's database/sql driver). [Parse] maps a name from configuration to one of them.
//
// Errors from either driver can be classified with [Classify] or matched with errors.Is against
// [ErrDuplicateKey], [ErrRetryable] and [ErrConnection] after a Dialect's InterpretError.
package dialect
