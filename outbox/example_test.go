package outbox_test

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
)

// Enqueue joins the caller's transaction: the message is published if and only if the order commits.
func ExampleOutbox_Enqueue() {
	ob, err := outbox.New(outbox.Config{Dialect: dialect.Postgres})
	if err != nil {
		panic(err)
	}
	placeOrder := func(ctx context.Context, db *sql.DB, orderID string) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // a no-op after Commit
		if _, err := tx.ExecContext(ctx, "INSERT INTO orders (id) VALUES ($1)", orderID); err != nil {
			return err
		}
		err = ob.Enqueue(ctx, tx, outbox.Message{
			Topic:       "orders",
			Key:         orderID + "/order-created", // stable: consumers dedupe on it
			Tag:         "created",
			ShardingKey: orderID, // this order's messages are published in enqueue order
			Payload:     []byte(`{"id":"` + orderID + `"}`),
		})
		if err != nil {
			return fmt.Errorf("enqueue order-created: %w", err)
		}
		return tx.Commit()
	}
	_ = placeOrder
	fmt.Println(outbox.PartitionOf(""), ob.Config().Prefix)
	// Output: -1 txbox
}
