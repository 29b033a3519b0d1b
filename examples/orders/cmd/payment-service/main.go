// Command payment-service runs the example's payment service: its order-created consumer, its relay, and
// GET /stats and /healthz on TXBOX_LISTEN (default :8081), until SIGINT or SIGTERM.
//
// Environment: TXBOX_DB (mysql, mariadb or postgres), TXBOX_DSN (its own database), TXBOX_ROCKETMQ_NAMESRV,
// and optionally TXBOX_LISTEN, TXBOX_ORDER_CREATED_TOPIC, TXBOX_PAYMENT_COMPLETED_TOPIC, TXBOX_LOG_LEVEL.
package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/cli"
	"github.com/txbox/txbox/examples/orders/internal/paymentservice"
)

func main() {
	log := cli.Logger()
	if err := run(log); err != nil {
		log.Error("payment service failed", "err", err)
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
	svc, err := paymentservice.New(ctx, paymentservice.Config{
		Dialect:               d,
		DSN:                   cli.Env(cli.EnvDSN, ""),
		NameServers:           ns,
		Listen:                cli.Env(cli.EnvListen, ":8081"),
		OrderCreatedTopic:     cli.Env(cli.EnvOrderCreatedTopic, ""),
		PaymentCompletedTopic: cli.Env(cli.EnvPaymentCompletedTopic, ""),
		Logger:                log,
	})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
