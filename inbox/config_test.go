package inbox_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// Invariant 9: bad configuration is refused by New with the field's name.
func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	db := unreachableDB(t)
	ok := inbox.Config{Dialect: dialect.MySQL, Consumer: "c"}
	for _, tc := range []struct {
		name  string
		edit  func(*inbox.Config)
		field string
	}{
		{"no dialect", func(c *inbox.Config) { c.Dialect = nil }, "Dialect"},
		{"no consumer", func(c *inbox.Config) { c.Consumer = "" }, "Consumer"},
		{"long consumer", func(c *inbox.Config) { c.Consumer = strings.Repeat("c", dialect.MaxConsumerBytes+1) }, "Consumer"},
		{"injected prefix", func(c *inbox.Config) { c.Prefix = "inbox; DROP TABLE users" }, "Prefix"},
		{"three-part prefix", func(c *inbox.Config) { c.Prefix = "a.b.c" }, "Prefix"},
		{"prefix with a digit first", func(c *inbox.Config) { c.Prefix = "1dead" }, "Prefix"},
		{"upper-case prefix", func(c *inbox.Config) { c.Prefix = "Txbox" }, "Prefix"},
		{"negative timeout", func(c *inbox.Config) { c.HandlerTimeout = -time.Second }, "HandlerTimeout"},
		{"zero max attempts", func(c *inbox.Config) { c.MaxAttempts = -1 }, "MaxAttempts"},
		{"short retention", func(c *inbox.Config) { c.Retention = time.Minute }, "Retention"},
		{"huge batch", func(c *inbox.Config) { c.PurgeBatchSize = inbox.MaxPurgeBatchSize + 1 }, "PurgeBatchSize"},
		{"backoff order", func(c *inbox.Config) { c.RetryBackoff, c.RetryBackoffMax = time.Second, time.Millisecond }, "RetryBackoffMax"},
		{"payload limit", func(c *inbox.Config) { c.MaxPayloadBytes = -1 }, "MaxPayloadBytes"},
		{"1 GiB payloads", func(c *inbox.Config) { c.MaxPayloadBytes = 1 << 30 }, "MaxPayloadBytes"},
		{"payloads over the limit", func(c *inbox.Config) { c.MaxPayloadBytes = inbox.MaxPayloadLimit + 1 }, "MaxPayloadBytes"},
		{"wrong dialect for driver", func(c *inbox.Config) { c.Dialect = dialect.Postgres }, "Dialect"},
		{"claim window within the timeout", func(c *inbox.Config) { c.ClaimWindow = time.Minute }, "ClaimWindow"},
		{"claim window under a custom timeout", func(c *inbox.Config) {
			c.HandlerTimeout, c.ClaimWindow = 10*time.Minute, 5*time.Minute
		}, "ClaimWindow"},
	} {
		cfg := ok
		tc.edit(&cfg)
		_, err := inbox.New(db, cfg)
		if !errors.Is(err, inbox.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: New = %v; want ErrInvalidConfig naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := inbox.New(nil, ok); !errors.Is(err, inbox.ErrInvalidConfig) {
		t.Errorf("nil db: %v", err)
	}
	ib, err := inbox.New(db, ok)
	if err != nil {
		t.Fatal(err)
	}
	got := ib.Config()
	if got.Prefix != "txbox" ||
		got.Retention != 7*24*time.Hour || got.MaxAttempts != 10 || got.HandlerTimeout != time.Minute ||
		got.PurgeBatchSize != 1000 || got.Logger == nil || got.MaxPayloadBytes != 4<<20 || got.ClaimWindow != 2*time.Minute {
		t.Errorf("defaults not filled in: %+v", got)
	}
}

// Invariant 9: oversized payloads and unstorable metadata are refused before any SQL.
func TestInvalidDeliveries(t *testing.T) {
	t.Parallel()
	db := unreachableDB(t)
	ib, err := inbox.New(db, inbox.Config{Dialect: dialect.MySQL, Consumer: "c", MaxPayloadBytes: 8})
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]inbox.Delivery{
		"payload":    {Key: "k", Payload: []byte("123456789")},
		"topic":      {Key: "k", Topic: "t\x00"},
		"message id": {Key: "k", MessageID: strings.Repeat("m", 256)},
		"header":     {Key: "k", Headers: map[string]string{"h": "\xff"}},
	} {
		if res, err := ib.Process(context.Background(), d, nop); res != inbox.Failed || !errors.Is(err, inbox.ErrInvalidDelivery) {
			t.Errorf("bad %s: %v, %v; want ErrInvalidDelivery", name, res, err)
		}
	}
	if _, err := ib.Process(context.Background(), inbox.Delivery{Key: "k"}, nil); err == nil {
		t.Error("nil handler accepted")
	}
}

// Invariant 9: an unmigrated schema gives an error that says so.
func TestUnmigratedSchema(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ib := newInbox(t, db, "c", inbox.Config{MaxAttempts: 1})
		res, err := ib.Process(ctx, inbox.Delivery{Key: "k"}, nop)
		if res != inbox.Failed || !errors.Is(err, dialect.ErrSchemaMissing) {
			t.Fatalf("Process on an empty database: %v, %v; want dialect.ErrSchemaMissing", res, err)
		}
		if !strings.Contains(err.Error(), "migrations") {
			t.Errorf("error %q does not tell the user to run the migrations", err)
		}
		if err := ib.Check(ctx); !errors.Is(err, dialect.ErrSchemaMissing) {
			t.Fatalf("Check: %v; want dialect.ErrSchemaMissing", err)
		}
		if _, err := ib.Purge(ctx); !errors.Is(err, dialect.ErrSchemaMissing) {
			t.Fatalf("Purge: %v; want dialect.ErrSchemaMissing", err)
		}
		if _, err := ib.ListDead(ctx, inbox.DeadFilter{}); !errors.Is(err, dialect.ErrSchemaMissing) {
			t.Fatalf("ListDead: %v; want dialect.ErrSchemaMissing", err)
		}
	}, testdb.Unmigrated())
}

// Check passes on a migrated database.
func TestCheckMigrated(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		if err := newInbox(t, db, "c", inbox.Config{}).Check(context.Background()); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})
}

// Invariant 9: a database that does not answer gives a connection error, not a hang or a parked message.
func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		driver, dsn string
		d           dialect.Dialect
	}{
		{"mysql", "txbox:secret@tcp(127.0.0.1:1)/txbox?timeout=2s", dialect.MySQL},
		{"postgres", "postgres://txbox:secret@127.0.0.1:1/txbox?sslmode=disable&connect_timeout=2", dialect.Postgres},
		{"pgx", "postgres://txbox:secret@127.0.0.1:1/txbox?sslmode=disable&connect_timeout=2", dialect.Postgres},
	} {
		t.Run(tc.driver, func(t *testing.T) {
			t.Parallel()
			db, err := sqlx.Open(tc.driver, tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ib, err := inbox.New(db, inbox.Config{Dialect: tc.d, Consumer: "c", MaxAttempts: 1, HandlerTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			res, err := ib.Process(context.Background(), inbox.Delivery{Key: "k"}, nop)
			if res != inbox.Failed || !errors.Is(err, dialect.ErrConnection) {
				t.Fatalf("Process: %v, %v; want Failed matching dialect.ErrConnection", res, err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
			if err := ib.Check(context.Background()); !errors.Is(err, dialect.ErrConnection) {
				t.Fatalf("Check: %v; want dialect.ErrConnection", err)
			}
		})
	}
}
