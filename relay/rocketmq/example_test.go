package rocketmq_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
)

// A relay publishing a MySQL outbox to RocketMQ until interrupted.
func Example() {
	db, err := sqlx.Open("mysql", "app:secret@tcp(127.0.0.1:3306)/app?parseTime=true")
	if err != nil {
		log.Fatal(err)
	}
	pub, err := rocketmq.New(rocketmq.Config{
		NameServers: []string{"10.0.0.5:9876", "10.0.0.6:9876"},
		Group:       "orders-relay",
		Logger:      slog.New(slog.NewJSONHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close() // after the relay has stopped: waits for publishes in flight, then shuts the producer down

	r, err := relay.New(db, relay.Config{Dialect: dialect.MySQL, Publisher: pub})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := r.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// Name servers must be literal IP addresses: the client resolves no host names.
func ExampleNew_invalidConfig() {
	_, err := rocketmq.New(rocketmq.Config{NameServers: []string{"localhost:9876"}})
	fmt.Println(err)
	// Output:
	// relay/rocketmq: invalid config: NameServers[0] "localhost:9876": host "localhost" is not a literal IP address (the client does not resolve names)
}
