package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func count(t *testing.T, db *testdb.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM txbox_outbox").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Invariant 9: bad input gets a clear error and writes nothing, even when valid messages come with it.
func TestEnqueueRejectsBadMessagesAndWritesNothing(t *testing.T) {
	good := outbox.Message{Topic: "t", Key: "k"}
	cases := []struct {
		name string
		msg  outbox.Message
		is   error
		want string
	}{
		{"empty topic", outbox.Message{Key: "k"}, outbox.ErrInvalidMessage, "topic is empty"},
		{"empty key", outbox.Message{Topic: "t"}, dialect.ErrInvalidKey, "key is empty"},
		{"long key", outbox.Message{Topic: "t", Key: strings.Repeat("k", dialect.MaxKeyBytes+1)}, dialect.ErrInvalidKey, "longer than"},
		{"key with NUL", outbox.Message{Topic: "t", Key: "a\x00b"}, dialect.ErrInvalidKey, "NUL"},
		{"long topic", outbox.Message{Topic: strings.Repeat("t", 256), Key: "k"}, outbox.ErrInvalidMessage, "topic is 256 bytes"},
		{"long tag", outbox.Message{Topic: "t", Key: "k", Tag: strings.Repeat("t", 256)}, outbox.ErrInvalidMessage, "tag"},
		{"long sharding key", outbox.Message{Topic: "t", Key: "k", ShardingKey: strings.Repeat("s", 256)}, outbox.ErrInvalidMessage, "sharding key"},
		{"oversized payload", outbox.Message{Topic: "t", Key: "k", Payload: make([]byte, 4<<20+1)}, outbox.ErrInvalidMessage, "MaxPayloadBytes"},
		{"empty header name", outbox.Message{Topic: "t", Key: "k", Headers: map[string]string{"": "v"}}, outbox.ErrInvalidMessage, "header name is empty"},
		{"control char in header name", outbox.Message{Topic: "t", Key: "k", Headers: map[string]string{"a\x01": "v"}}, outbox.ErrInvalidMessage, "control character"},
		{"invalid UTF-8 header value", outbox.Message{Topic: "t", Key: "k", Headers: map[string]string{"a": "\xff"}}, outbox.ErrInvalidMessage, "UTF-8"},
		{"huge headers", outbox.Message{Topic: "t", Key: "k", Headers: map[string]string{"a": strings.Repeat("v", 20000), "b": strings.Repeat("v", 20000)}}, outbox.ErrInvalidMessage, "MaxHeaderBytes"},
	}
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			err := ob.Enqueue(context.Background(), db, good, c.msg)
			if !errors.Is(err, c.is) || !errors.Is(err, outbox.ErrInvalidMessage) || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), "message 1") {
				t.Errorf("%s: got %v, want an error wrapping %v mentioning %q and message 1", c.name, err, c.is, c.want)
			}
		}
		if n := count(t, db); n != 0 {
			t.Fatalf("%d rows written by rejected calls", n)
		}
	})
}

// Keys, payloads and headers are stored byte for byte; several messages go in one call; a rollback leaves
// nothing.
func TestEnqueueInCallersTransaction(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		msgs := []outbox.Message{{Topic: "t", Key: "Order-1"}, {Topic: "t", Key: "order-1"}, {Topic: "t", Key: "order-1 "},
			{Topic: "t", Key: "bin", Payload: []byte{0, 1, 2, 255}}}
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ob.Enqueue(ctx, tx, msgs...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db); n != 0 {
			t.Fatalf("%d rows after rollback", n)
		}
		tx, err = db.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ob.Enqueue(ctx, tx, msgs...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db); n != 4 {
			t.Fatalf("%d rows, want 4 distinct keys", n)
		}
	})
}

func TestNewValidatesConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  outbox.Config
		want string
	}{
		{outbox.Config{}, "Dialect is required"},
		{outbox.Config{Dialect: dialect.MySQL, Prefix: "bad name"}, "Prefix"},
		{outbox.Config{Dialect: dialect.MySQL, Prefix: "x;drop"}, "Prefix"},
		{outbox.Config{Dialect: dialect.MySQL, MaxPayloadBytes: -1}, "MaxPayloadBytes must be between"},
		{outbox.Config{Dialect: dialect.MySQL, MaxHeaderBytes: 1 << 20}, "MaxHeaderBytes must be between"},
		{outbox.Config{Dialect: dialect.Postgres, NotifyInterval: -2}, "NotifyInterval must be -1"},
		{outbox.Config{Dialect: dialect.Postgres, NotifyInterval: time.Microsecond}, "NotifyInterval must be -1"},
	} {
		_, err := outbox.New(c.cfg)
		if !errors.Is(err, outbox.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestNotifyIntervalDefaults(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{0: outbox.DefaultNotifyInterval, -1: -1, time.Second: time.Second} {
		ob, err := outbox.New(outbox.Config{Dialect: dialect.Postgres, NotifyInterval: in})
		if err != nil || ob.Config().NotifyInterval != want {
			t.Errorf("NotifyInterval %s: %v, %v; want %s", in, ob.Config().NotifyInterval, err, want)
		}
	}
}

// recorder is a DBTX that records the statements run through it.
type recorder struct {
	dialect.DBTX
	stmts []string
}

func (r *recorder) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	r.stmts = append(r.stmts, q)
	return r.DBTX.ExecContext(ctx, q, args...)
}

// NOTIFY is sent by the first Enqueue of each NotifyInterval only (with -1, by every one; with DisableNotify, by
// none), and whatever it sends, every message is written.
func TestNotifyAtMostOncePerInterval(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		if db.Dialect != dialect.Postgres {
			t.Skip("NOTIFY is PostgreSQL's")
		}
		for _, c := range []struct {
			cfg  outbox.Config
			want []bool
		}{
			{outbox.Config{NotifyInterval: time.Hour}, []bool{true, false, false}},
			{outbox.Config{NotifyInterval: -1}, []bool{true, true, true}},
			{outbox.Config{DisableNotify: true}, []bool{false, false, false}},
		} {
			c.cfg.Dialect = db.Dialect
			ob, err := outbox.New(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			before := count(t, db)
			rec := &recorder{DBTX: db}
			for i := range c.want {
				if err := ob.Enqueue(context.Background(), rec, outbox.Message{Topic: "t", Key: "k" + strconv.Itoa(i)}); err != nil {
					t.Fatal(err)
				}
			}
			for i, want := range c.want {
				if got := strings.Contains(rec.stmts[i], "pg_notify"); got != want {
					t.Errorf("%+v: Enqueue %d notified: %v, want %v", c.cfg, i, got, want)
				}
			}
			if n := count(t, db) - before; n != len(c.want) {
				t.Errorf("%+v: %d rows written, want %d", c.cfg, n, len(c.want))
			}
		}
	})
}

func TestPartitionOf(t *testing.T) {
	if outbox.PartitionOf("") != -1 {
		t.Fatal("no sharding key must map to -1")
	}
	seen := map[int]bool{}
	for i := range 1000 {
		p := outbox.PartitionOf(strings.Repeat("x", i%37) + string(rune('a'+i%26)) + string(rune(i)))
		if p < 0 || p >= outbox.Partitions {
			t.Fatalf("partition %d out of range", p)
		}
		seen[p] = true
	}
	if len(seen) < outbox.Partitions/2 {
		t.Fatalf("only %d partitions used by 1000 keys", len(seen))
	}
}
