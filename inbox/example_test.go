package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
)

func ExampleKey() {
	fmt.Println(inbox.Key("12345", "payment"))
	fmt.Println(inbox.Key("invoices/2024", "7")) // a '/' inside a part cannot be confused with the separator
	parts, _ := inbox.SplitKey("invoices%2F2024/7")
	fmt.Printf("%q\n", parts)
	// Output:
	// 12345/payment
	// invoices%2F2024/7
	// ["invoices/2024" "7"]
}

// A consumer marks an order paid exactly once per payment message. The handler's write is an upsert in the
// inbox's transaction; messages to publish as a consequence would be enqueued with package outbox in the same
// transaction (outbox.Enqueue(ctx, tx, ...)), so that consuming, changing state and producing happen once.
func ExampleInbox_Process() {
	db, err := sqlx.Open("mysql", os.Getenv("TXBOX_MYSQL_DSN"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ib, err := inbox.New(db, inbox.Config{Dialect: dialect.MySQL, Consumer: "payment-service"})
	if err != nil {
		log.Fatal(err)
	}
	markPaid := dialect.Upsert{Table: "orders", Columns: []string{"id", "status"},
		Conflict: []string{"id"}, Update: []string{"status"}}

	// In a broker callback, for each message:
	orderID := "12345"
	d := inbox.Delivery{Key: inbox.Key(orderID, "payment"), Payload: []byte(`{"amount":4200}`)}
	res, err := ib.Process(context.Background(), d, func(ctx context.Context, tx *sqlx.Tx) error {
		_, err := markPaid.Exec(ctx, tx, dialect.MySQL, orderID, "paid")
		return err
	})
	switch {
	case errors.Is(err, inbox.ErrFingerprintMismatch):
		log.Printf("producer bug: %v", err) // redelivery will not help; alert
	case err != nil:
		log.Printf("retry later: %v", err) // RocketMQ: ConsumeRetryLater
	default:
		log.Printf("acknowledge (%v)", res) // Processed, Duplicate or Parked: ConsumeSuccess
	}
}

// Parked messages are listed page by page and replayed after the bug is fixed.
func ExampleInbox_Replay() {
	var ib *inbox.Inbox // from inbox.New
	ctx := context.Background()
	for after := int64(0); ; {
		page, err := ib.ListDead(ctx, inbox.DeadFilter{AfterID: after})
		if err != nil || len(page) == 0 {
			return
		}
		for _, dl := range page {
			after = dl.ID
			_, err := ib.Replay(ctx, dl.ID, func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
				return nil // the fixed handler, with d.Payload
			})
			if err != nil && !errors.Is(err, inbox.ErrDeadNotFound) {
				log.Printf("dead letter %d (key %s) still fails: %v", dl.ID, dl.Delivery.Key, err)
			}
		}
	}
}
