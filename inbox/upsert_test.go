package inbox_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// The documented pattern: the handler's own writes go through the inbox's transaction and are idempotent
// upserts (dialect.Upsert), so a redelivery, a retried deadlock or a key delivered again after Purge leaves
// the same state.
func TestUpsertHandler(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ddl := "CREATE TABLE payments (order_id VARCHAR(64) PRIMARY KEY, amount BIGINT NOT NULL, status VARCHAR(16) NOT NULL)"
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			t.Fatal(err)
		}
		ib := newInbox(t, db, "payment-service", inbox.Config{})
		markPaid := dialect.Upsert{Table: "payments", Columns: []string{"order_id", "amount", "status"},
			Conflict: []string{"order_id"}, Update: []string{"amount", "status"}}
		handle := func(orderID string, amount int64) inbox.Handler {
			return func(ctx context.Context, tx *sqlx.Tx) error {
				_, err := markPaid.Exec(ctx, tx, db.Dialect, orderID, amount, "paid")
				return err
			}
		}
		d := inbox.Delivery{Key: inbox.Key("12345", "payment"), Payload: []byte(`{"amount":4200}`)}
		for i, want := range []inbox.Result{inbox.Processed, inbox.Duplicate, inbox.Duplicate} {
			if res, err := ib.Process(ctx, d, handle("12345", 4200)); err != nil || res != want {
				t.Fatalf("delivery %d: %v, %v; want %v", i+1, res, err, want)
			}
		}
		// The same upsert without the inbox would still converge; with it, the second write never happens.
		var n int
		var amount int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(amount) FROM payments").Scan(&n, &amount); err != nil {
			t.Fatal(err)
		}
		if n != 1 || amount != 4200 {
			t.Fatalf("payments: %d rows, amount %d; want 1 row of 4200", n, amount)
		}
		// A later message about the same order (another key) updates the row in place.
		refund := inbox.Delivery{Key: inbox.Key("12345", "payment-corrected"), Payload: []byte(`{"amount":4100}`)}
		if res, err := ib.Process(ctx, refund, handle("12345", 4100)); err != nil || res != inbox.Processed {
			t.Fatalf("correction: %v, %v", res, err)
		}
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(amount) FROM payments").Scan(&n, &amount); err != nil {
			t.Fatal(err)
		}
		if n != 1 || amount != 4100 {
			t.Fatalf("payments after correction: %d rows, amount %d; want 1 row of 4100", n, amount)
		}
	})
}
