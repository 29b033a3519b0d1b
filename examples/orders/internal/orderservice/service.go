package orderservice

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	DSN         string          // required: the order service's own database
	NameServers []string        // required: RocketMQ name servers, literal IP:port
	// Listen is the HTTP address. Default "127.0.0.1:8080"; ":0" picks a free port (see Service.Addr).
	Listen string
	// OrderCreatedTopic is where orders are announced. Default "order-created".
	OrderCreatedTopic string
	// PaymentCompletedTopic is consumed. Default "payment-completed".
	PaymentCompletedTopic string
	// Group names the producer and consumer groups. Default "order-service".
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
		return errors.New("order service: Dialect, DSN and NameServers are required")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.OrderCreatedTopic == "" {
		c.OrderCreatedTopic = bus.OrderCreatedTopic
	}
	if c.PaymentCompletedTopic == "" {
		c.PaymentCompletedTopic = bus.PaymentCompletedTopic
	}
	if c.Group == "" {
		c.Group = bus.OrderGroup
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c.Faults.Validate()
}

// Service is a running order service's parts.
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
		return nil, fmt.Errorf("order service: %w", err)
	}
	s := &Service{cfg: cfg, db: db, log: cfg.Logger.With("service", "order")}
	if s.outbox, err = outbox.New(outbox.Config{Dialect: cfg.Dialect}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("order service: %w", err)
	}
	if s.inbox, err = inbox.New(db, inbox.Config{Dialect: cfg.Dialect, Consumer: cfg.Group, HandlerTimeout: cfg.HandlerTimeout}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("order service: %w", err)
	}
	if s.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("order service: listen: %w", err)
	}
	return s, nil
}

// Addr is the HTTP listener's address.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// Stats returns the service's message counts.
func (s *Service) Stats() bus.StatsSnapshot { return s.stats.Snapshot() }

// DB is the service's database (the demo reads it for its report).
func (s *Service) DB() *sqlx.DB { return s.db }

// Run serves HTTP, publishes the outbox through its relay and consumes payment-completed until ctx ends, then
// stops in dependency order: no new orders, no new messages (in-flight handlers finish), relay's in-flight
// batch, producer, database. It returns nil on a clean shutdown.
func (s *Service) Run(ctx context.Context) (err error) {
	defer func() { err = errors.Join(err, s.db.Close()) }()
	instance := fmt.Sprintf("%s-%d-%s", s.cfg.Group, os.Getpid(), randomHex(4))

	// relay/rocketmq's Publisher: the business key goes into KEYS (for the broker's tooling) and exactly into
	// a property (for consumers); only SendOK counts as published.
	producer, err := rmqrelay.New(rmqrelay.Config{NameServers: s.cfg.NameServers, Group: s.cfg.Group, Logger: s.log})
	if err != nil {
		_ = s.ln.Close()
		return fmt.Errorf("order service: %w", err)
	}
	defer func() { err = errors.Join(err, producer.Close()) }()
	rl, err := relay.New(s.db, relay.Config{Dialect: s.cfg.Dialect, Publisher: bus.Instrument(producer, s.cfg.Faults, &s.stats)})
	if err != nil {
		_ = s.ln.Close()
		return fmt.Errorf("order service: %w", err)
	}
	consumer, err := bus.StartConsumer(bus.ConsumerConfig{
		NameServers: s.cfg.NameServers, Group: s.cfg.Group, Instance: instance + "-c", Topic: s.cfg.PaymentCompletedTopic,
		Inbox: s.inbox, Handler: s.markPaid, HandlerTimeout: s.cfg.HandlerTimeout,
		Faults: s.cfg.Faults, Stats: &s.stats, Logger: s.log, FromFirstOffset: s.cfg.FromFirstOffset,
		WithoutInbox: withoutInbox(s),
	})
	if err != nil {
		_ = s.ln.Close()
		return fmt.Errorf("order service: %w", err)
	}

	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var relayErr error
	wg.Go(func() { relayErr = rl.Run(relayCtx) })

	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(s.ln) }()
	s.log.Info("order service running", "http", s.Addr(), "consumes", s.cfg.PaymentCompletedTopic, "publishes", s.cfg.OrderCreatedTopic)

	select {
	case <-ctx.Done():
	case err = <-httpDone:
		err = fmt.Errorf("order service: http: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if herr := srv.Shutdown(shutdownCtx); herr != nil {
		err = errors.Join(err, fmt.Errorf("order service: http shutdown: %w", herr))
	}
	err = errors.Join(err, consumer.Close())
	stopRelay()
	wg.Wait()
	s.log.Info("order service stopped")
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
