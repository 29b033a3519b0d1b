// Package effectstest is the conformance suite of inbox.EffectStore: one test body, run through inbox.Effects
// on every store txbox ships (SQLEffectStore on MariaDB, PostgreSQL/lib/pq and PostgreSQL/pgx, and the Redis
// store), including the hazards the records exist for: concurrent deliveries of one key, a consumer killed
// (SIGKILL, in a subprocess) between acting and completing, and many keys delivered several times with
// failures.
//
// A test package runs it with Run, and calls MaybeChild first in its TestMain so that the test binary can be
// the killed consumer:
//
//	func TestMain(m *testing.M) { effectstest.MaybeChild(); testdb.Main(m) }
//
// Only tests import this package.
package effectstest
