package paymentservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/gateway"
	"github.com/txbox/txbox/examples/orders/internal/service"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/outbox"
)

// Config configures New: see service.Config. The payment service's defaults: Listen "127.0.0.1:8081" (for
// /stats and /healthz), Group "payment-service", GatewayURL a stand-in gateway in the process.
type Config = service.Config

// Service is a payment service's parts.
type Service struct {
	*service.Base
	// effects keeps the charge's idempotency record: the effects table in the service's own database.
	effects *inbox.Effects
	gateway *gateway.Client
	ownGW   *gateway.Server // started by New when Config.GatewayURL is empty
	lost    sync.Map        // message keys whose gateway answer was lost once (Faults.LostResponsePercent)
}

// New opens and migrates the database, binds the HTTP listener and, without Config.GatewayURL, starts a
// stand-in gateway; Run starts the work.
func New(ctx context.Context, cfg Config) (*Service, error) {
	b, err := service.Open(ctx, cfg, service.Defaults{Name: "payment", Listen: "127.0.0.1:8081", Group: bus.PaymentGroup}, schema)
	if err != nil {
		return nil, err
	}
	s := &Service{Base: b}
	st, err := inbox.NewSQLEffectStore(b.SQL, inbox.SQLEffectStoreConfig{Dialect: b.Cfg.Dialect})
	if err == nil {
		// The lease outlasts the handler deadline, which bounds the gateway call: a run that dies is taken over
		// only after it can no longer be charging.
		s.effects, err = inbox.NewEffects(st, inbox.EffectsConfig{Consumer: b.Cfg.Group,
			Lease: max(10*time.Second, 2*b.Cfg.HandlerTimeout), Logger: b.Log})
	}
	if err == nil && b.Cfg.GatewayURL == "" {
		if s.ownGW, err = gateway.Start("127.0.0.1:0"); err == nil {
			b.Cfg.GatewayURL = s.ownGW.URL()
		}
	}
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("payment service: %w", err)
	}
	s.gateway = &gateway.Client{URL: b.Cfg.GatewayURL}
	return s, nil
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

// pay handles order-created inside the inbox's transaction: charge (at the gateway, once), record, announce.
func (s *Service) pay(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
	var o bus.OrderCreated
	if err := json.Unmarshal(m.Payload, &o); err != nil {
		return fmt.Errorf("order-created %s: %w", m.MessageKey, err)
	}
	paymentID, err := s.charge(ctx, m, o)
	if err != nil {
		return err
	}
	_, err = dialect.Upsert{
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

// charge charges the order at the gateway and returns the charge id. The call cannot join the inbox's
// transaction, so an idempotency record (inbox.Effects) stands beside it: Begin finds a charge completed by an
// earlier run of this handler — one whose transaction rolled back after the charge, like the demo's slow
// handlers — and returns its saved id without calling the gateway; otherwise it holds the order's lease while
// the gateway charges under the record's key as Idempotency-Key, and Complete saves the charge id. A call whose
// answer is lost is released and runs again on the redelivery, with the same key: the gateway answers with the
// first charge.
func (s *Service) charge(ctx context.Context, m *rocketmq.Message, o bus.OrderCreated) (string, error) {
	if s.Cfg.WithoutInbox {
		// As without txbox: no record and no idempotency key, so every delivery charges.
		r, err := s.gateway.Charge(ctx, "", o.OrderID, o.AmountCents)
		return r.ID, s.loseResponse(m, err)
	}
	c, err := s.effects.Begin(ctx, inbox.Delivery{Key: m.Key, Payload: m.Payload})
	if err != nil {
		return "", err
	}
	switch c.Status {
	case inbox.EffectCompleted:
		s.Counters().EffectDuplicate()
		return string(c.Result), nil
	case inbox.EffectParked:
		return "", fmt.Errorf("the charge of order %s is parked in the effect records", o.OrderID)
	}
	r, err := s.gateway.Charge(ctx, c.Key, o.OrderID, o.AmountCents)
	if err = s.loseResponse(m, err); err != nil {
		if _, rerr := c.Release(ctx, err); rerr != nil {
			return "", errors.Join(err, rerr)
		}
		return "", err
	}
	if err := c.Complete(ctx, []byte(r.ID)); err != nil {
		return "", err
	}
	return r.ID, nil
}

// loseResponse turns a successful gateway call into bus.ErrLostResponse the first time for a message the faults
// choose: the gateway charged, the service never heard.
func (s *Service) loseResponse(m *rocketmq.Message, err error) error {
	if err != nil || s.Cfg.Faults.For(m.MessageKey) != bus.LostResponse {
		return err
	}
	if _, seen := s.lost.LoadOrStore(m.MessageKey, struct{}{}); seen {
		return nil
	}
	return bus.ErrLostResponse
}

// Run consumes order-created and publishes the outbox through its relay until ctx ends, then stops: no new
// messages (in-flight handlers finish), the relay's in-flight batch, the producer, the database, the stand-in
// gateway. It returns nil on a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	if s.ownGW != nil {
		defer s.ownGW.Close()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	return s.Base.Run(ctx, service.Consume{Topic: s.Cfg.OrderCreatedTopic, InboxKey: inboxKey, Handler: s.pay},
		s.Cfg.PaymentCompletedTopic, mux)
}

// Close releases what New acquired, for a service whose Run is never called.
func (s *Service) Close() error {
	if s.ownGW != nil {
		_ = s.ownGW.Close()
	}
	return s.Base.Close()
}
