// Package testdb is txbox's test bed: it connects tests to the real MariaDB and PostgreSQL servers named by
// environment variables, gives each test an isolated, migrated database (MySQL) or schema (PostgreSQL), and runs
// one test body against every target: MariaDB, PostgreSQL through lib/pq, PostgreSQL through pgx.
//
// Environment:
//
//	TXBOX_MYSQL_DSN     e.g. txbox:txbox@tcp(127.0.0.1:53306)/txbox  (the user needs CREATE/DROP DATABASE)
//	TXBOX_POSTGRES_DSN  e.g. postgres://txbox:txbox@127.0.0.1:55432/txbox?sslmode=disable (needs CREATE on the db)
//
// `make services` starts both on loopback and `scripts/services.sh env` prints the variables. When a variable is
// unset the test is skipped with a message saying so, unless CI is set: then it fails, so a CI run never passes
// by skipping.
//
// Only tests import this package.
package testdb
