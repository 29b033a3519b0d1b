package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// Bad configuration is refused by NewEffects and NewSQLEffectStore with the field's name, before anything runs.
func TestNewEffectsValidatesConfig(t *testing.T) {
	t.Parallel()
	db := unreachableDB(t)
	st, err := inbox.NewSQLEffectStore(db, inbox.SQLEffectStoreConfig{Dialect: dialect.MySQL})
	if err != nil {
		t.Fatal(err)
	}
	ok := inbox.EffectsConfig{Consumer: "c"}
	for _, tc := range []struct {
		name  string
		edit  func(*inbox.EffectsConfig)
		field string
	}{
		{"no consumer", func(c *inbox.EffectsConfig) { c.Consumer = "" }, "Consumer"},
		{"long consumer", func(c *inbox.EffectsConfig) { c.Consumer = strings.Repeat("c", dialect.MaxConsumerBytes+1) }, "Consumer"},
		{"short lease", func(c *inbox.EffectsConfig) { c.Lease = time.Millisecond }, "Lease"},
		{"lease past retention", func(c *inbox.EffectsConfig) { c.Lease, c.Retention = 2*time.Hour, time.Hour }, "Lease"},
		{"short retention", func(c *inbox.EffectsConfig) { c.Retention = time.Minute }, "Retention"},
		{"max attempts", func(c *inbox.EffectsConfig) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"huge result", func(c *inbox.EffectsConfig) { c.MaxResultBytes = inbox.MaxEffectResultBytes + 1 }, "MaxResultBytes"},
		{"payload limit", func(c *inbox.EffectsConfig) { c.MaxPayloadBytes = -1 }, "MaxPayloadBytes"},
		{"huge batch", func(c *inbox.EffectsConfig) { c.PurgeBatchSize = inbox.MaxPurgeBatchSize + 1 }, "PurgeBatchSize"},
		{"purge interval", func(c *inbox.EffectsConfig) { c.PurgeInterval = -time.Second }, "PurgeInterval"},
	} {
		cfg := ok
		tc.edit(&cfg)
		_, err := inbox.NewEffects(st, cfg)
		if !errors.Is(err, inbox.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: NewEffects = %v; want ErrInvalidConfig naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := inbox.NewEffects(nil, ok); !errors.Is(err, inbox.ErrInvalidConfig) {
		t.Errorf("nil store: %v", err)
	}
	fx, err := inbox.NewEffects(st, ok)
	if err != nil {
		t.Fatal(err)
	}
	got := fx.Config()
	if got.Lease != inbox.DefaultLease || got.MaxAttempts != inbox.DefaultMaxAttempts || got.Retention != inbox.DefaultRetention ||
		got.MaxResultBytes != inbox.DefaultMaxResultBytes || got.Logger == nil || got.Propagator == nil {
		t.Errorf("defaults not filled in: %+v", got)
	}

	for _, tc := range []struct {
		name  string
		cfg   inbox.SQLEffectStoreConfig
		field string
	}{
		{"no dialect", inbox.SQLEffectStoreConfig{}, "Dialect"},
		{"bad prefix", inbox.SQLEffectStoreConfig{Dialect: dialect.MySQL, Prefix: "x; DROP TABLE y"}, "Prefix"},
		{"wrong dialect for driver", inbox.SQLEffectStoreConfig{Dialect: dialect.Postgres}, "Dialect"},
	} {
		if _, err := inbox.NewSQLEffectStore(db, tc.cfg); !errors.Is(err, inbox.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: NewSQLEffectStore = %v; want ErrInvalidConfig naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := inbox.NewSQLEffectStore(nil, inbox.SQLEffectStoreConfig{Dialect: dialect.MySQL}); !errors.Is(err, inbox.ErrInvalidConfig) {
		t.Errorf("nil db: %v", err)
	}
}

// Check tells a missing effects table apart (dialect.ErrSchemaMissing).
func TestEffectsCheckUnmigrated(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		fx := newSQLEffects(t, db, "c", inbox.EffectsConfig{})
		if err := fx.Check(context.Background()); !errors.Is(err, dialect.ErrSchemaMissing) {
			t.Errorf("Check on an unmigrated database = %v, want ErrSchemaMissing", err)
		}
	}, testdb.Unmigrated())
}

// Purge deletes the consumer's records older than Retention in batches, keeps parked ones and others'.
func TestEffectsPurge(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		fx := newSQLEffects(t, db, "c", inbox.EffectsConfig{PurgeBatchSize: 7})
		other := newSQLEffects(t, db, "other", inbox.EffectsConfig{})
		done := func(context.Context, *inbox.Claim) ([]byte, error) { return []byte("r"), nil }
		for i := range 30 {
			if _, err := fx.Run(ctx, inbox.Delivery{Key: fmt.Sprintf("k%d", i)}, done); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := other.Run(ctx, inbox.Delivery{Key: "k0"}, done); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.Park(ctx, inbox.Delivery{Key: "parked"}, errors.New("x")); err != nil {
			t.Fatal(err)
		}
		// Everything eight days old but k20..k29, and the other consumer's.
		age := "UTC_TIMESTAMP(6) - INTERVAL 8 DAY"
		if db.Dialect == dialect.Postgres {
			age = "now() - interval '8 days'"
		}
		q := db.Rebind("UPDATE txbox_effects SET recorded_at = " + age + " WHERE consumer = ? AND msg_key NOT LIKE 'k2_'")
		if _, err := db.ExecContext(ctx, q, "c"); err != nil {
			t.Fatal(err)
		}
		n, err := fx.Purge(ctx)
		if err != nil || n != 20 {
			t.Fatalf("Purge = %d, %v; want 20 (k0..k19)", n, err)
		}
		var left int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM txbox_effects").Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left != 12 {
			t.Errorf("%d records left, want 12 (k20..k29, parked, the other consumer's)", left)
		}
	})
}
