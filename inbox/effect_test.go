package inbox_test

import (
	"testing"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/effectstest"
	"github.com/txbox/txbox/internal/testdb"
)

// newSQLEffects returns Effects on db's effects table for consumer, with cfg's other fields.
func newSQLEffects(t testing.TB, db *testdb.DB, consumer string, cfg inbox.EffectsConfig) *inbox.Effects {
	t.Helper()
	st, err := inbox.NewSQLEffectStore(db.DB, inbox.SQLEffectStoreConfig{Dialect: db.Dialect})
	if err != nil {
		t.Fatalf("NewSQLEffectStore: %v", err)
	}
	cfg.Consumer = consumer
	fx, err := inbox.NewEffects(st, cfg)
	if err != nil {
		t.Fatalf("NewEffects: %v", err)
	}
	return fx
}

// TestEffectsConformance runs the EffectStore conformance suite on SQLEffectStore: MariaDB, PostgreSQL through
// lib/pq and through pgx, one fresh database each, shared by the suite's cases under consumers of their own.
func TestEffectsConformance(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		st, err := inbox.NewSQLEffectStore(db.DB, inbox.SQLEffectStoreConfig{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		effectstest.Run(t, effectstest.Target{Store: st, Spec: effectstest.SQLSpec(db.Target.Driver, db.Dialect, db.DSN)})
	})
}
