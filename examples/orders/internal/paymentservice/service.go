package paymentservice

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/service"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/outbox"
)

// Config configures New: see service.Config. The payment service's defaults: Listen "127.0.0.1:8081" (for
// /stats and /healthz), Group "payment-service".
type Config = service.Config

// Service is a payment service's parts.
type Service struct{ *service.Base }

// New opens and migrates the database and binds the HTTP listener; Run starts the work.
func New(ctx context.Context, cfg Config) (*Service, error) {
	b, err := service.Open(ctx, cfg, service.Defaults{Name: "payment", Listen: "127.0.0.1:8081", Group: bus.PaymentGroup}, schema)
	if err != nil {
		return nil, err
	}
	return &Service{b}, nil
}

// inboxKey is the key the payment is deduplicated on (rocketmq.Config.InboxKey): the order, not the message.
// Any order-created message for the order — a redelivery, a producer's re-send, a copy with another message
// id — finds the same key.
func inboxKey(m *rocketmq.Message) string {
	if o := bus.OrderOf(m.MessageKey); o != "" {
		return inbox.Key(o, "payment")
	}
	return m.MessageKey
}

// pay handles order-created inside the inbox's transaction: record, charge, announce — all or nothing.
func (s *Service) pay(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
	var o bus.OrderCreated
	if err := json.Unmarshal(m.Payload, &o); err != nil {
		return fmt.Errorf("order-created %s: %w", m.MessageKey, err)
	}
	paymentID := "pay-" + o.OrderID
	_, err := dialect.Upsert{
		Table:    "payments",
		Columns:  []string{"order_id", "payment_id", "amount_cents"},
		Conflict: []string{"order_id"},
		Update:   []string{"amount_cents"},
	}.Exec(ctx, tx, s.Cfg.Dialect, o.OrderID, paymentID, o.AmountCents)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO payment_charges (order_id, amount_cents, charged_us) VALUES (?, ?, ?)`),
		o.OrderID, o.AmountCents, time.Now().UnixMicro()); err != nil {
		return fmt.Errorf("charge order %s: %w", o.OrderID, err)
	}
	payload, err := json.Marshal(bus.PaymentCompleted{OrderID: o.OrderID, PaymentID: paymentID, AmountCents: o.AmountCents})
	if err != nil {
		return err
	}
	return s.Outbox.Enqueue(ctx, tx, outbox.Message{
		Topic:   s.Cfg.PaymentCompletedTopic,
		Key:     bus.PaymentCompletedKey(o.OrderID),
		Payload: payload,
	})
}

// Run consumes order-created and publishes the outbox through its relay until ctx ends, then stops: no new
// messages (in-flight handlers finish), the relay's in-flight batch, the producer, the database. It returns nil
// on a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	return s.Base.Run(ctx, service.Consume{Topic: s.Cfg.OrderCreatedTopic, InboxKey: inboxKey, Handler: s.pay},
		s.Cfg.PaymentCompletedTopic, mux)
}
