package paymentservice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/store"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	rmqrelay "github.com/txbox/txbox/relay/rocketmq"
)

// Config configures New.
type Config struct {
	Dialect     dialect.Dialect // required
	DSN         string          // required: the payment service's own database
	NameServers []string        // required: RocketMQ name servers, literal IP:port
	// Listen is the HTTP address of /stats and /healthz. Default "127.0.0.1:8081"; ":0" picks a free port.
	Listen string
	// OrderCreatedTopic is consumed. Default "order-created".
	OrderCreatedTopic string
	// PaymentCompletedTopic is where payments are announced. Default "payment-completed".
	PaymentCompletedTopic string
	// Group names the producer and consumer groups, and is the inbox's consumer name. Default "payment-service".
	Group string
	// HandlerTimeout is the inbox handler deadline. Default 10s.
	HandlerTimeout time.Duration
	// FromFirstOffset starts a new consumer group at the beginning of its topic (tests, the demo).
	FromFirstOffset bool
	// WithoutInbox applies every delivery, duplicates included, in a plain transaction: the demo's
	// -without-inbox, to show what the inbox prevents. Never in a real service.
	WithoutInbox bool
	Faults       bus.Faults   // failures to inject; none by default
	Logger       *slog.Logger // default: discard
}

func (c *Config) setDefaults() error {
	if c.Dialect == nil || c.DSN == "" || len(c.NameServers) == 0 {
		return errors.New("payment service: Dialect, DSN and NameServers are required")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8081"
	}
	if c.OrderCreatedTopic == "" {
		c.OrderCreatedTopic = bus.OrderCreatedTopic
	}
	if c.PaymentCompletedTopic == "" {
		c.PaymentCompletedTopic = bus.PaymentCompletedTopic
	}
	if c.Group == "" {
		c.Group = bus.PaymentGroup
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c.Faults.Validate()
}

// Service is a payment service's parts.
type Service struct {
	cfg    Config
	db     *sqlx.DB
	outbox *outbox.Outbox
	inbox  *inbox.Inbox
	ln     net.Listener
	stats  bus.Stats
	log    *slog.Logger
}

// New opens and migrates the database and binds the HTTP listener; Run starts the work.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, cfg.Dialect, cfg.DSN, 32, schema)
	if err != nil {
		return nil, fmt.Errorf("payment service: %w", err)
	}
	s := &Service{cfg: cfg, db: db, log: cfg.Logger.With("service", "payment")}
	if s.outbox, err = outbox.New(outbox.Config{Dialect: cfg.Dialect}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("payment service: %w", err)
	}
	if s.inbox, err = inbox.New(db, inbox.Config{Dialect: cfg.Dialect, Consumer: cfg.Group, HandlerTimeout: cfg.HandlerTimeout}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("payment service: %w", err)
	}
	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("payment service: listen: %w", err)
	}
	return s, nil
}

// Addr is the HTTP listener's address.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Stats returns the service's message counts.
func (s *Service) Stats() bus.StatsSnapshot { return s.stats.Snapshot() }

// DB is the service's database (the demo reads it for its report).
func (s *Service) DB() *sqlx.DB { return s.db }

// inboxKey is the key the payment is deduplicated on: the order, not the message. Any order-created message
// for the order — a redelivery, a producer's re-send, a copy with another message id — finds the same key.
func inboxKey(messageKey string) string {
	if o := bus.OrderOf(messageKey); o != "" {
		return inbox.Key(o, "payment")
	}
	return messageKey
}

// pay handles order-created inside the inbox's transaction: record, charge, announce — all or nothing.
func (s *Service) pay(ctx context.Context, tx *sqlx.Tx, m bus.Message) error {
	var o bus.OrderCreated
	if err := json.Unmarshal(m.Payload, &o); err != nil {
		return fmt.Errorf("order-created %s: %w", m.Key, err)
	}
	paymentID := "pay-" + o.OrderID
	_, err := dialect.Upsert{
		Table:    "payments",
		Columns:  []string{"order_id", "payment_id", "amount_cents"},
		Conflict: []string{"order_id"},
		Update:   []string{"amount_cents"},
	}.Exec(ctx, tx, s.cfg.Dialect, o.OrderID, paymentID, o.AmountCents)
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
	return s.outbox.Enqueue(ctx, tx, outbox.Message{
		Topic:   s.cfg.PaymentCompletedTopic,
		Key:     bus.PaymentCompletedKey(o.OrderID),
		Payload: payload,
	})
}

// Run consumes order-created and publishes the outbox through its relay until ctx ends, then stops: no new
// messages (in-flight handlers finish), the relay's in-flight batch, the producer, the database. It returns nil
// on a clean shutdown.
func (s *Service) Run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, s.db.Close()) }()
	instance := fmt.Sprintf("%s-%d-%s", s.cfg.Group, os.Getpid(), randomHex(4))

	// relay/rocketmq's Publisher: the business key goes into KEYS (for the broker's tooling) and exactly into
	// a property (for consumers); only SendOK counts as published.
	producer, err := rmqrelay.New(rmqrelay.Config{NameServers: s.cfg.NameServers, Group: s.cfg.Group, Logger: s.log})
	if err != nil {
		_ = s.ln.Close()
		return fmt.Errorf("payment service: %w", err)
	}
	defer func() { err = errors.Join(err, producer.Close()) }()
	rl, err := relay.New(s.db, relay.Config{Dialect: s.cfg.Dialect, Publisher: bus.Instrument(producer, s.cfg.Faults, &s.stats)})
	if err != nil {
		_ = s.ln.Close()
		return fmt.Errorf("payment service: %w", err)
	}
	consumer, err := bus.StartConsumer(bus.ConsumerConfig{
		NameServers: s.cfg.NameServers, Group: s.cfg.Group, Instance: instance + "-c", Topic: s.cfg.OrderCreatedTopic,
		Inbox: s.inbox, InboxKey: inboxKey, Handler: s.pay, HandlerTimeout: s.cfg.HandlerTimeout,
		Faults: s.cfg.Faults, Stats: &s.stats, Logger: s.log, FromFirstOffset: s.cfg.FromFirstOffset,
		WithoutInbox: withoutInbox(s),
	})
	if err != nil {
		_ = s.ln.Close()
		return fmt.Errorf("payment service: %w", err)
	}

	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var relayErr error
	wg.Go(func() { relayErr = rl.Run(relayCtx) })

	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(s.ln) }()
	s.log.Info("payment service running", "http", s.Addr(), "consumes", s.cfg.OrderCreatedTopic, "publishes", s.cfg.PaymentCompletedTopic)

	select {
	case <-ctx.Done():
	case err = <-httpDone:
		err = fmt.Errorf("payment service: http: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if herr := srv.Shutdown(shutdownCtx); herr != nil {
		err = errors.Join(err, fmt.Errorf("payment service: http shutdown: %w", herr))
	}
	err = errors.Join(err, consumer.Close())
	stopRelay()
	wg.Wait()
	s.log.Info("payment service stopped")
	return errors.Join(err, relayErr)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Close releases what New acquired, for a service whose Run is never called (Run releases it itself).
func (s *Service) Close() error { return errors.Join(s.ln.Close(), s.db.Close()) }

func withoutInbox(s *Service) *sqlx.DB {
	if s.cfg.WithoutInbox {
		return s.db
	}
	return nil
}
