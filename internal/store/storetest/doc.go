// Package storetest is the conformance suite of the store seam (package internal/store): every method of
// store.Store is called directly, not through the relay or the inbox, on every target of package testdb
// (MariaDB, PostgreSQL through lib/pq, PostgreSQL through pgx), and what it did is checked with plain SQL.
//
// Each case runs on a fresh, migrated database of its own, in parallel with the others:
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
//
//	func TestConformance(t *testing.T) { storetest.Run(t) }
//
// The subtests are named Method/Case/target, e.g. TestConformance/OutboxClaimUnkeyed/SkipLocked/mariadb, so
// that -run can pick a method, a case or a target. A case that needs another session to be blocked waits for
// the database to report the lock wait (pg_stat_activity, information_schema) instead of sleeping.
//
// Only tests import this package.
package storetest
