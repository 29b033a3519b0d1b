package service

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
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	rmqrelay "github.com/txbox/txbox/relay/rocketmq"
)

// Config configures a service. Dialect, DSN and NameServers are required; each service documents the defaults
// it fills in for Listen and Group.
type Config struct {
	Dialect     dialect.Dialect // required
	DSN         string          // required: the service's own database
	NameServers []string        // required: RocketMQ name servers, literal IP:port
	// Listen is the HTTP address; ":0" picks a free port (see Base.Addr).
	Listen string
	// OrderCreatedTopic carries order-created (the order service publishes, the payment service consumes).
	// Default "order-created".
	OrderCreatedTopic string
	// PaymentCompletedTopic carries payment-completed (the payment service publishes, the order service
	// consumes). Default "payment-completed".
	PaymentCompletedTopic string
	// Group names the producer and consumer groups, and is the inbox's consumer name.
	Group string
	// HandlerTimeout is the inbox handler deadline. Default 10s.
	HandlerTimeout time.Duration
	// FromFirstOffset starts a new consumer group at the beginning of its topic (tests, the demo).
	FromFirstOffset bool
	// WithoutInbox applies every delivery, duplicates included, in a plain transaction: the demo's
	// -without-inbox, to show what the inbox prevents. Never in a real service.
	WithoutInbox bool
	// GatewayURL is the payment gateway the payment service charges (package gateway's protocol). Default: a
	// stand-in gateway the payment service starts on 127.0.0.1. The order service ignores it.
	GatewayURL string
	Faults     bus.Faults   // failures to inject; none by default
	Logger     *slog.Logger // default: discard
}

// Defaults are a service's own defaults for Config.
type Defaults struct {
	Name   string // "order": the log attribute service=order; errors and log messages say "order service"
	Listen string
	Group  string
}

func (c *Config) setDefaults(def Defaults) error {
	if c.Dialect == nil || c.DSN == "" || len(c.NameServers) == 0 {
		return fmt.Errorf("%s service: Dialect, DSN and NameServers are required", def.Name)
	}
	if c.Listen == "" {
		c.Listen = def.Listen
	}
	if c.OrderCreatedTopic == "" {
		c.OrderCreatedTopic = bus.OrderCreatedTopic
	}
	if c.PaymentCompletedTopic == "" {
		c.PaymentCompletedTopic = bus.PaymentCompletedTopic
	}
	if c.Group == "" {
		c.Group = def.Group
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c.Faults.Validate()
}

// Base is a service's shared parts. Run (or, when Run is never called, Close) releases them.
type Base struct {
	Cfg    Config // defaults filled in
	SQL    *sqlx.DB
	Outbox *outbox.Outbox
	Inbox  *inbox.Inbox
	Log    *slog.Logger

	name  string // "order service"
	ln    net.Listener
	stats bus.Stats
}

// Open fills in cfg's defaults, opens and migrates the database (txbox's tables and schema), creates the
// outbox and the inbox, and binds the HTTP listener.
func Open(ctx context.Context, cfg Config, def Defaults, schema store.Schema) (*Base, error) {
	if err := cfg.setDefaults(def); err != nil {
		return nil, err
	}
	name := def.Name + " service"
	db, err := store.Open(ctx, cfg.Dialect, cfg.DSN, 32, schema)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	b := &Base{Cfg: cfg, SQL: db, Log: cfg.Logger.With("service", def.Name), name: name}
	if b.Outbox, err = outbox.New(outbox.Config{Dialect: cfg.Dialect}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if b.Inbox, err = inbox.New(db, inbox.Config{Dialect: cfg.Dialect, Consumer: cfg.Group, HandlerTimeout: cfg.HandlerTimeout}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if b.ln, err = net.Listen("tcp", cfg.Listen); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%s: listen: %w", name, err)
	}
	return b, nil
}

// Addr is the HTTP listener's address.
func (b *Base) Addr() string { return b.ln.Addr().String() }

// Stats returns the service's message counts.
func (b *Base) Stats() bus.StatsSnapshot { return b.stats.Snapshot() }

// Counters are the service's counts, for the counting a service does itself.
func (b *Base) Counters() *bus.Stats { return &b.stats }

// DB is the service's database (the demo reads it for its report).
func (b *Base) DB() *sqlx.DB { return b.SQL }

// Close releases what Open acquired, for a service whose Run is never called (Run releases it itself).
func (b *Base) Close() error { return errors.Join(b.ln.Close(), b.SQL.Close()) }

// Consume is the topic a service consumes and what it does with each message.
type Consume struct {
	Topic string
	// InboxKey maps a message to the key the inbox records; default the message's own key (see
	// rocketmq.Config.InboxKey).
	InboxKey func(m *rocketmq.Message) string
	// Handler applies a message's effects in tx, the inbox's transaction; it runs once per inbox key.
	Handler rocketmq.Handler
}

// Run publishes the outbox through a relay, consumes c through the inbox (inbox/rocketmq's consumer) and serves
// h until ctx ends, then stops in dependency order: no new requests, no new messages (in-flight handlers
// finish; after 15 s they are cancelled and their messages go to the group's next consumer), the relay's
// in-flight batch, the producer, the database. publishes names the outbox's topic for the log. It returns nil
// on a clean shutdown.
func (b *Base) Run(ctx context.Context, c Consume, publishes string, h http.Handler) (err error) {
	defer func() { err = errors.Join(err, b.SQL.Close()) }()
	instance := fmt.Sprintf("%s-%d-%s", b.Cfg.Group, os.Getpid(), randomHex(4))

	// relay/rocketmq's Publisher: the business key goes into KEYS (for the broker's tooling) and exactly into
	// a property (for consumers); only SendOK counts as published.
	producer, err := rmqrelay.New(rmqrelay.Config{NameServers: b.Cfg.NameServers, Group: b.Cfg.Group, Logger: b.Log})
	if err != nil {
		_ = b.ln.Close()
		return fmt.Errorf("%s: %w", b.name, err)
	}
	defer func() { err = errors.Join(err, producer.Close()) }()
	// Published rows are kept for a day (Retention) instead of deleted, so that txbox trace and the console
	// show when each message was published.
	rl, err := relay.New(b.SQL, relay.Config{Dialect: b.Cfg.Dialect, Publisher: bus.Instrument(producer, b.Cfg.Faults, &b.stats),
		Retention: 24 * time.Hour})
	if err != nil {
		_ = b.ln.Close()
		return fmt.Errorf("%s: %w", b.name, err)
	}
	// inbox/rocketmq's consumer runs every message through the inbox: the business key from TXBOX_KEY, an
	// explicit ACK mapping, unusable messages parked, a graceful Shutdown. The demo's faults and counters sit
	// in its hooks (bus.ConsumerHooks); without them this is all a service needs.
	ccfg := rocketmq.Config{
		NameServers: b.Cfg.NameServers, Group: b.Cfg.Group, Topic: c.Topic, InstanceName: instance + "-c",
		InboxKey: c.InboxKey, FromFirstOffset: b.Cfg.FromFirstOffset, Logger: b.Log,
	}
	hooks := bus.ConsumerHooks{Faults: b.Cfg.Faults, HandlerTimeout: b.Cfg.HandlerTimeout, Stats: &b.stats}
	if b.Cfg.WithoutInbox {
		hooks.WithoutInbox = b.SQL
	}
	ccfg, handler, err := hooks.Apply(ccfg, c.Handler)
	if err != nil {
		_ = b.ln.Close()
		return fmt.Errorf("%s: %w", b.name, err)
	}
	consumer, err := rocketmq.New(b.Inbox, ccfg, handler)
	if err != nil {
		_ = b.ln.Close()
		return fmt.Errorf("%s: %w", b.name, err)
	}

	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	var relayErr error
	wg.Go(func() { relayErr = rl.Run(relayCtx) })

	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(b.ln) }()
	b.Log.Info(b.name+" running", "http", b.Addr(), "consumes", c.Topic, "publishes", publishes)

	select {
	case <-ctx.Done():
	case err = <-httpDone:
		err = fmt.Errorf("%s: http: %w", b.name, err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if herr := srv.Shutdown(shutdownCtx); herr != nil {
		err = errors.Join(err, fmt.Errorf("%s: http shutdown: %w", b.name, herr))
	}
	err = errors.Join(err, consumer.Shutdown(shutdownCtx))
	stopRelay()
	wg.Wait()
	b.Log.Info(b.name + " stopped")
	return errors.Join(err, relayErr)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
