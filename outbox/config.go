package outbox

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/dialect"
)

// Defaults of Config.
const (
	// DefaultMaxPayloadBytes is RocketMQ's default maxMessageSize (relay/rocketmq.DefaultMaxMessageSize).
	DefaultMaxPayloadBytes = 4 << 20
	DefaultMaxHeaderBytes  = 32 << 10
	// MaxPayloadLimit is the largest MaxPayloadBytes accepted.
	MaxPayloadLimit = 64 << 20
	// MaxHeaderLimit is the largest MaxHeaderBytes accepted (the MySQL column is a BLOB).
	MaxHeaderLimit = 65535
	// DefaultNotifyInterval is the default NotifyInterval, relay.Config's default MinPollInterval: a message
	// that came without a notification waits about as long as one a polling relay finds.
	DefaultNotifyInterval = 10 * time.Millisecond
	// MinNotifyInterval is the shortest NotifyInterval accepted, other than -1.
	MinNotifyInterval = time.Millisecond
)

// Config configures an Outbox. Only Dialect is required.
type Config struct {
	// Dialect is the database family: dialect.MySQL or dialect.Postgres. Required.
	Dialect dialect.Dialect
	// Prefix names the installation's tables (see dialect.TablesFor): the outbox is <prefix>_outbox. Relays,
	// migrations and the CLI must use the same prefix. Default "txbox".
	Prefix string
	// MaxPayloadBytes is the largest payload Enqueue accepts. Default 4 MiB (RocketMQ's limit); at most 64 MiB.
	MaxPayloadBytes int
	// MaxHeaderBytes bounds the headers of one message, measured as stored (JSON). Default 32 KiB; at most
	// 65535.
	MaxHeaderBytes int
	// Check, if set, is called by Enqueue for every message that passed the outbox's own validation, with the
	// headers it will store (trace headers included), before anything is written. It is how the transport
	// declares what it can never send: an error fails Enqueue with ErrInvalidMessage (wrapping Check's error,
	// which should name the field), so a message the relay could never publish is refused while the producer's
	// transaction can still react, instead of becoming a dead letter later. For RocketMQ use relay/rocketmq's
	// Check (or its Limits' Check). It must be safe for concurrent use. Default: none.
	Check func(Message) error
	// DisableNotify turns off the NOTIFY that Enqueue sends on PostgreSQL to wake relays. Default false
	// (notify). Relays still find the rows by polling. Turn it off when no relay listens (relays on lib/pq or
	// MySQL cannot) or when polling latency (relay.Config.MaxPollInterval) is good enough.
	DisableNotify bool
	// NotifyInterval is how often, at most, this Outbox sends a NOTIFY: an Enqueue sends one when the last
	// Enqueue that did is at least NotifyInterval ago, and the others of that window send none. NOTIFY is not
	// free: PostgreSQL serializes the commits of notifying transactions on one lock, held across the commit's
	// WAL flush, so producers that all notify commit one at a time (see README's Performance section). A relay
	// that found rows within its MaxPollInterval polls every MinPollInterval, so it finds the messages of a
	// window that came without a notification; an idle relay is woken by the first message after the window.
	// One case waits longer: when the transaction that sent a window's NOTIFY rolls back, the messages of that
	// window wait for an idle relay's next poll (relay.Config.MaxPollInterval, 1s by default). Default 10ms;
	// -1 notifies on every Enqueue; otherwise at least 1ms.
	NotifyInterval time.Duration
	// Logger receives debug logs. Default: none.
	Logger *slog.Logger
	// Propagator injects the trace context of Enqueue's span (see TracerProvider; without an SDK, the context
	// of Enqueue's ctx), W3C traceparent/tracestate by default, into each message's Headers, unless the message already carries those headers, so the consumer's handler continues
	// the producer's trace (see inbox.Config.Propagator). Only the OpenTelemetry API is used: without an SDK
	// (or without a span in ctx) nothing is added. Default propagation.TraceContext{};
	// propagation.NewCompositeTextMapPropagator() turns it off.
	Propagator propagation.TextMapPropagator
	// TracerProvider makes Enqueue's span ("create <topic>", kind producer, the messaging semantic conventions;
	// see the package documentation): its context is the traceparent the messages carry. Only the
	// OpenTelemetry API is used. Default otel.GetTracerProvider(), a no-op until an SDK is installed.
	TracerProvider trace.TracerProvider
}

// withDefaults returns c with zero values replaced by defaults, or an error naming the first bad field.
func (c Config) withDefaults() (Config, error) {
	if c.Dialect == nil {
		return c, fmt.Errorf("%w: Dialect is required (dialect.MySQL or dialect.Postgres)", ErrInvalidConfig)
	}
	if c.Prefix == "" {
		c.Prefix = dialect.DefaultPrefix
	}
	if _, err := dialect.TablesFor(c.Prefix); err != nil {
		return c, fmt.Errorf("%w: Prefix: %w", ErrInvalidConfig, err)
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.MaxPayloadBytes < 0 || c.MaxPayloadBytes > MaxPayloadLimit {
		return c, fmt.Errorf("%w: MaxPayloadBytes must be between 1 and %d, got %d", ErrInvalidConfig, MaxPayloadLimit, c.MaxPayloadBytes)
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxHeaderBytes < 0 || c.MaxHeaderBytes > MaxHeaderLimit {
		return c, fmt.Errorf("%w: MaxHeaderBytes must be between 1 and %d, got %d", ErrInvalidConfig, MaxHeaderLimit, c.MaxHeaderBytes)
	}
	switch {
	case c.NotifyInterval == 0:
		c.NotifyInterval = DefaultNotifyInterval
	case c.NotifyInterval == -1:
	case c.NotifyInterval < MinNotifyInterval:
		return c, fmt.Errorf("%w: NotifyInterval must be -1 (every Enqueue) or at least %s, got %s", ErrInvalidConfig,
			MinNotifyInterval, c.NotifyInterval)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	return c, nil
}
