package orders_test

import (
	"context"
	"log"
	"os"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/migrations"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// A producer writes its change and the message announcing it in one transaction, and a relay publishes
// the committed messages. The order service does exactly this (internal/orderservice).
func Example_outbox() {
	ctx := context.Background()
	db := sqlx.MustOpen("pgx", os.Getenv("DATABASE_URL"))
	if err := migrations.Up(ctx, db.DB, dialect.Postgres); err != nil { // txbox's tables; idempotent
		log.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{Dialect: dialect.Postgres})
	if err != nil {
		log.Fatal(err)
	}

	tx := db.MustBeginTx(ctx, nil)
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	tx.MustExecContext(ctx, `INSERT INTO orders (id, amount_cents) VALUES ($1, $2)`, "o-1", 1250)
	err = ob.Enqueue(ctx, tx, outbox.Message{
		Topic: "order-created", Key: "o-1/created", Payload: []byte(`{"order_id":"o-1","amount_cents":1250}`),
	})
	if err != nil {
		log.Fatal(err) // the order is rolled back with it: never an order without its message
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}

	// In the same process (or as `txbox relay`): publish committed messages until ctx ends.
	var publisher relay.Publisher // e.g. relay/rocketmq's Publisher; nil only when the broker said SendOK
	rl, err := relay.New(db, relay.Config{Dialect: dialect.Postgres, Publisher: publisher})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = rl.Run(ctx) }()
}

// A consumer runs each message's effects in the inbox's transaction, keyed by what the message is about,
// and enqueues the messages it produces in that same transaction: consume, change, produce — once. The
// payment service does exactly this (internal/paymentservice).
func Example_inbox() {
	ctx := context.Background()
	db := sqlx.MustOpen("mysql", os.Getenv("TXBOX_MYSQL_DSN"))
	ib, err := inbox.New(db, inbox.Config{Dialect: dialect.MySQL, Consumer: "payment-service"})
	if err != nil {
		log.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{Dialect: dialect.MySQL})
	if err != nil {
		log.Fatal(err)
	}
	record := dialect.Upsert{Table: "payments", Columns: []string{"order_id", "amount_cents"},
		Conflict: []string{"order_id"}, Update: []string{"amount_cents"}}

	// For each message the broker delivers (order-created for order o-1):
	d := inbox.Delivery{Key: inbox.Key("o-1", "payment"), Payload: []byte(`{"order_id":"o-1","amount_cents":1250}`)}
	_, err = ib.Process(ctx, d, func(ctx context.Context, tx *sqlx.Tx) error {
		if _, err := record.Exec(ctx, tx, dialect.MySQL, "o-1", 1250); err != nil {
			return err
		}
		return ob.Enqueue(ctx, tx, outbox.Message{Topic: "payment-completed", Key: "o-1/payment-completed",
			Payload: []byte(`{"order_id":"o-1"}`)})
	})
	if err != nil {
		log.Print(err) // nothing was committed: tell the broker to redeliver (RocketMQ: ConsumeRetryLater)
		return
	}
	// Processed, Duplicate (already committed) or Parked (in the dead letters): acknowledge (ConsumeSuccess).
}
