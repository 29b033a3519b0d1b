package main

import (
	"context"

	"github.com/txbox/txbox/examples/orders/internal/cli"
	"github.com/txbox/txbox/examples/orders/internal/paymentservice"
	"github.com/txbox/txbox/examples/orders/internal/service"
)

func main() {
	cli.Main("payment service", ":8081", func(ctx context.Context, cfg service.Config) (cli.Runner, error) {
		return paymentservice.New(ctx, cfg)
	})
}
