package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/cli"
	"github.com/txbox/txbox/examples/orders/internal/orderservice"
)

func main() {
	log := cli.Logger()
	if err := run(log); err != nil {
		log.Error("order service failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx, stop := cli.SignalContext()
	defer stop()
	d, err := dialect.Parse(cli.Env(cli.EnvDB, ""))
	if err != nil {
		return fmt.Errorf("%s: %w", cli.EnvDB, err)
	}
	ns, err := cli.NameServers(ctx, cli.Env(cli.EnvNameServer, ""))
	if err != nil {
		return err
	}
	svc, err := orderservice.New(ctx, orderservice.Config{
		Dialect:               d,
		DSN:                   cli.Env(cli.EnvDSN, ""),
		NameServers:           ns,
		Listen:                cli.Env(cli.EnvListen, ":8080"),
		OrderCreatedTopic:     cli.Env(cli.EnvOrderCreatedTopic, ""),
		PaymentCompletedTopic: cli.Env(cli.EnvPaymentCompletedTopic, ""),
		Logger:                log,
	})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
