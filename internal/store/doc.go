// Package store holds all of txbox's SQL: one Store per dialect and installation (its tables, named by
// dialect.TablesFor), with every statement rendered once by New, for the outbox and its relay, the inbox and its
// effect records, the partitioned tables, and the read-only queries of the console and the CLI. Packages outbox,
// relay, inbox, metrics, internal/partition and cmd/txbox call it; users never see it (River's driver seam is the
// model): the public packages keep the guarantees, this package keeps the statements that implement them.
//
// Each dialect is a set of statement strings (mysql.go, postgres.go) behind one shared implementation
// (sqlStore), so that the logic around a statement (argument encoding, row counting, the transaction around
// several statements) is written once. The conformance suite in internal/store/storetest runs every method on
// MariaDB and on PostgreSQL through lib/pq and pgx; a new dialect passes it before anything else uses it.
package store
