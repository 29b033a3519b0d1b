package orderservice

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/service"
)

// Config configures New: see service.Config. The order service's defaults: Listen "127.0.0.1:8080", Group
// "order-service".
type Config = service.Config

// Service is a running order service's parts.
type Service struct{ *service.Base }

// New opens and migrates the database and binds the HTTP listener; Run starts the work.
func New(ctx context.Context, cfg Config) (*Service, error) {
	b, err := service.Open(ctx, cfg, service.Defaults{Name: "order", Listen: "127.0.0.1:8080", Group: bus.OrderGroup}, schema)
	if err != nil {
		return nil, err
	}
	return &Service{b}, nil
}

// Run serves HTTP, publishes the outbox through its relay and consumes payment-completed until ctx ends, then
// stops in dependency order: no new orders, no new messages (in-flight handlers finish), relay's in-flight
// batch, producer, database. It returns nil on a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	return s.Base.Run(ctx, service.Consume{Topic: s.Cfg.PaymentCompletedTopic, Handler: s.markPaid},
		s.Cfg.OrderCreatedTopic, s.Handler())
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
