package inbox_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// Consume → change state → produce, once: the handler upserts its row and enqueues the next message in the
// inbox's transaction, so redeliveries add nothing and a failed attempt leaves neither the row nor the message.
func TestConsumeChangeProduceOnce(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, "CREATE TABLE payments (order_id VARCHAR(20) PRIMARY KEY, amount BIGINT NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: "payment-service"})
		if err != nil {
			t.Fatal(err)
		}
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		pay := dialect.Upsert{Table: "payments", Columns: []string{"order_id", "amount"}, Conflict: []string{"order_id"}, Update: []string{"amount"}}
		handler := func(order string, fail bool) inbox.Handler {
			return func(ctx context.Context, tx *sqlx.Tx) error {
				if _, err := pay.Exec(ctx, tx, db.Dialect, order, 100); err != nil {
					return err
				}
				err := ob.Enqueue(ctx, tx, outbox.Message{Topic: "payment-completed", Key: inbox.Key(order, "completed"), ShardingKey: order})
				if err != nil {
					return err
				}
				if fail {
					return errors.New("crash after producing")
				}
				return nil
			}
		}
		d := inbox.Delivery{Key: inbox.Key("o-1", "payment"), Payload: []byte(`{"order":"o-1"}`)}
		if _, err := ib.Process(ctx, d, handler("o-1", true)); err == nil {
			t.Fatal("failing handler reported success")
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_outbox"); n != 0 {
			t.Fatalf("a failed attempt left %d outbox rows", n)
		}
		for i := range 3 {
			res, err := ib.Process(ctx, d, handler("o-1", false))
			want := inbox.Duplicate
			if i == 0 {
				want = inbox.Processed
			}
			if err != nil || res != want {
				t.Fatalf("delivery %d: %v, %v; want %v", i, res, err, want)
			}
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM txbox_outbox"); n != 1 {
			t.Fatalf("%d outbox rows after 4 deliveries, want 1", n)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM payments"); n != 1 {
			t.Fatalf("%d payments, want 1", n)
		}
	})
}
