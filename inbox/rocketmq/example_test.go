package rocketmq_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
)

// A payment service consuming order events exactly once per business key.
func Example() {
	db, err := sqlx.Open("mysql", "app:secret@tcp(127.0.0.1:3306)/payments?parseTime=true")
	if err != nil {
		log.Fatal(err)
	}
	ib, err := inbox.New(db, inbox.Config{Dialect: dialect.MySQL, Consumer: "payment-service"})
	if err != nil {
		log.Fatal(err)
	}
	c, err := rocketmq.New(ib, rocketmq.Config{
		NameServers: []string{"10.0.0.5:9876"},
		Group:       "payment-service",
		Topic:       "orders",
		Orderly:     true, // per-order order: the producer sets ShardingKey to the order id
	}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
		// Runs once per business key; the key is recorded in tx with these writes.
		_, err := tx.ExecContext(ctx, "INSERT INTO charges (order_id, amount) VALUES (?, ?)", m.ShardingKey, m.Payload)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	<-ctx.Done()
	// Stop taking messages, let handlers in flight finish (at most 30s), then shut the client down.
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Shutdown(sctx); err != nil {
		log.Print(err)
	}
}

// The broker's consume timeout must leave the inbox's handler deadline room: otherwise the client redelivers a
// message whose handler still runs.
func ExampleNew_handlerDeadline() {
	ib, _ := inbox.New(sqlx.NewDb(nil, "mysql"), inbox.Config{Dialect: dialect.MySQL, Consumer: "svc",
		HandlerTimeout: 2 * time.Minute})
	_, err := rocketmq.New(ib, rocketmq.Config{NameServers: []string{"127.0.0.1:9876"}, Group: "svc", Topic: "t",
		ConsumeTimeout: 2 * time.Minute}, func(context.Context, *sqlx.Tx, *rocketmq.Message) error { return nil })
	fmt.Println(err)
	// Output:
	// inbox/rocketmq: invalid config: ConsumeTimeout (2m0s) must exceed the inbox's HandlerTimeout (2m0s) by at least 30s, or the broker redelivers messages whose handler still runs
}

// The hooks: deduplicate on the order rather than on the message, time each message's processing, and count
// what became of every message.
func Example_hooks() {
	db := sqlx.MustOpen("mysql", "app:secret@tcp(127.0.0.1:3306)/payments?parseTime=true")
	ib, err := inbox.New(db, inbox.Config{Dialect: dialect.MySQL, Consumer: "payment-service"})
	if err != nil {
		log.Fatal(err)
	}
	var acked, redelivered, unusable atomic.Int64
	c, err := rocketmq.New(ib, rocketmq.Config{
		NameServers: []string{"10.0.0.5:9876"}, Group: "payment-service", Topic: "order-created",
		// "o-1/created" and a later "o-1/created-again" are one payment: the inbox records "o-1/payment".
		InboxKey: func(m *rocketmq.Message) string {
			order, _, _ := strings.Cut(m.MessageKey, "/")
			return inbox.Key(order, "payment")
		},
		Interceptor: func(ctx context.Context, m *rocketmq.Message, next func(context.Context) (inbox.Result, error)) (inbox.Result, error) {
			start := time.Now()
			res, err := next(ctx) // Process with the handler; its result decides the ACK unless changed here
			log.Printf("%s: %s in %s", m.Key, res, time.Since(start))
			return res, err
		},
		OnOutcome: func(o rocketmq.Outcome) {
			switch {
			case o.Unusable:
				unusable.Add(1)
			case o.Acked:
				acked.Add(1)
			default:
				redelivered.Add(1)
			}
		},
	}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO charges (payment_key, body) VALUES (?, ?)", m.Key, m.Payload)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // when the service stops; Example shows a graceful shutdown on a signal
}
