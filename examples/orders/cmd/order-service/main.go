package main

import (
	"context"

	"github.com/txbox/txbox/examples/orders/internal/cli"
	"github.com/txbox/txbox/examples/orders/internal/orderservice"
	"github.com/txbox/txbox/examples/orders/internal/service"
)

func main() {
	cli.Main("order service", ":8080", func(ctx context.Context, cfg service.Config) (cli.Runner, error) {
		return orderservice.New(ctx, cfg)
	})
}
