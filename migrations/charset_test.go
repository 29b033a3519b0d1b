package migrations_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/migrations"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// On a MySQL database whose default character set is latin1, the outbox's last_error took that character set,
// and a broker error in another script failed the relay's UPDATE (error 1366) at every attempt (issue 11). After
// the migrations, the text of a retry and of a dead letter is stored as it was.
func TestLatin1DatabaseStoresAnyErrorText(t *testing.T) {
	tg := testdb.Targets[0]
	if tg.Dialect != dialect.MySQL {
		t.Fatalf("testdb.Targets[0] is %s, want MySQL", tg.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := mysql.ParseDSN(testdb.ServerDSN(t, tg))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sqlx.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg.DBName = "txbox_latin1_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+cfg.DBName+" CHARACTER SET latin1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+cfg.DBName) })
	db, err := sqlx.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrations.Up(ctx, db.DB, dialect.MySQL); err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{Dialect: dialect.MySQL})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, db, outbox.Message{Topic: "t", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	const text = "брокер: 消息被拒绝 😀"
	fail := relay.PublisherFunc(func(context.Context, outbox.Record) error { return errors.New(text) })
	drain := func(maxAttempts int) {
		t.Helper()
		r, err := relay.New(db, relay.Config{Dialect: dialect.MySQL, Publisher: fail, MaxAttempts: maxAttempts})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Drain(ctx); err != nil {
			t.Fatalf("drain with MaxAttempts %d: %v", maxAttempts, err)
		}
	}
	lastError := func(table string) string {
		t.Helper()
		var s string
		if err := db.QueryRowContext(ctx, "SELECT last_error FROM "+table).Scan(&s); err != nil {
			t.Fatalf("last_error of %s: %v", table, err)
		}
		return s
	}
	drain(2) // a retry
	if got := lastError("txbox_outbox"); got != text {
		t.Fatalf("retried row's last_error = %q, want %q", got, text)
	}
	if _, err := db.ExecContext(ctx, "UPDATE txbox_outbox SET available_at = UTC_TIMESTAMP(6)"); err != nil {
		t.Fatal(err)
	}
	drain(1) // a dead letter
	if got := lastError("txbox_outbox_dead"); got != text {
		t.Fatalf("dead letter's last_error = %q, want %q", got, text)
	}
}
