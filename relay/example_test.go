package relay_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// A relay process: publish until SIGINT, then finish the batches in flight and exit.
func ExampleRelay_Run() {
	db, err := sqlx.Open("pgx", os.Getenv("DATABASE_URL"))
	if err != nil {
		panic(err)
	}
	pub := relay.PublisherFunc(func(ctx context.Context, r outbox.Record) error {
		// Send r to the broker; return nil only once it is durably accepted.
		return nil
	})
	r, err := relay.New(db, relay.Config{
		Dialect:   dialect.Postgres,
		Publisher: pub,
		Workers:   4,
		Logger:    slog.Default(),
	})
	if err != nil {
		panic(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := r.Run(ctx); err != nil {
		slog.Error("relay stopped", "err", err)
	}
}

// Drain publishes what is due and returns, e.g. from a cron job or a test.
func ExampleRelay_Drain() {
	var db *sqlx.DB // opened elsewhere
	var pub relay.Publisher
	r, err := relay.New(db, relay.Config{Dialect: dialect.MySQL, Publisher: pub})
	if err != nil {
		return // db and pub are nil in this sketch
	}
	n, err := r.Drain(context.Background())
	_, _ = n, err
}
