package outbox

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/propagation"

	"github.com/txbox/txbox/dialect"
)

// Defaults of Config.
const (
	DefaultTable           = "txbox_outbox"
	DefaultDeadTable       = "txbox_outbox_dead"
	DefaultPublishedTable  = "txbox_outbox_published"
	DefaultMaxPayloadBytes = 4 << 20 // RocketMQ's default maxMessageSize
	DefaultMaxHeaderBytes  = 32 << 10
	// MaxPayloadLimit is the largest MaxPayloadBytes accepted.
	MaxPayloadLimit = 64 << 20
	// MaxHeaderLimit is the largest MaxHeaderBytes accepted (the MySQL column is a BLOB).
	MaxHeaderLimit = 65535
)

// Config configures an Outbox. Only Dialect is required.
type Config struct {
	// Dialect is the database family: dialect.MySQL or dialect.Postgres. Required.
	Dialect dialect.Dialect
	// Table is the outbox table, optionally schema-qualified. Default "txbox_outbox".
	Table string
	// DeadTable is the dead-letter table. Default "txbox_outbox_dead".
	DeadTable string
	// MaxPayloadBytes is the largest payload Enqueue accepts. Default 4 MiB (RocketMQ's limit); at most 64 MiB.
	MaxPayloadBytes int
	// MaxHeaderBytes bounds the headers of one message, measured as stored (JSON). Default 32 KiB; at most
	// 65535.
	MaxHeaderBytes int
	// DisableNotify turns off the NOTIFY that Enqueue sends on PostgreSQL to wake relays. Default false
	// (notify). Relays still find the rows by polling. NOTIFY is not free: PostgreSQL serializes the commits of
	// notifying transactions on one lock, which txbox-bench measures at about a tenth of the throughput of
	// 8 concurrent one-statement producers. Turn it off when no relay listens (relays on lib/pq or MySQL
	// cannot) or when polling latency (relay.Config.MinPollInterval) is good enough.
	DisableNotify bool
	// Logger receives debug logs. Default: none.
	Logger *slog.Logger
	// Propagator injects the trace context of Enqueue's ctx (W3C traceparent/tracestate by default) into each
	// message's Headers, unless the message already carries those headers, so the consumer's handler continues
	// the producer's trace (see inbox.Config.Propagator). Only the OpenTelemetry API is used: without an SDK
	// (or without a span in ctx) nothing is added. Default propagation.TraceContext{};
	// propagation.NewCompositeTextMapPropagator() turns it off.
	Propagator propagation.TextMapPropagator
}

func (c *Config) fill() error {
	if c.Dialect == nil {
		return fmt.Errorf("%w: Dialect is required (dialect.MySQL or dialect.Postgres)", ErrInvalidConfig)
	}
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.DeadTable == "" {
		c.DeadTable = DefaultDeadTable
	}
	if err := dialect.ValidateIdent(c.Table); err != nil {
		return fmt.Errorf("%w: Table: %w", ErrInvalidConfig, err)
	}
	if err := dialect.ValidateIdent(c.DeadTable); err != nil {
		return fmt.Errorf("%w: DeadTable: %w", ErrInvalidConfig, err)
	}
	if c.MaxPayloadBytes == 0 {
		c.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	if c.MaxPayloadBytes < 0 || c.MaxPayloadBytes > MaxPayloadLimit {
		return fmt.Errorf("%w: MaxPayloadBytes must be between 1 and %d, got %d", ErrInvalidConfig, MaxPayloadLimit, c.MaxPayloadBytes)
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxHeaderBytes < 0 || c.MaxHeaderBytes > MaxHeaderLimit {
		return fmt.Errorf("%w: MaxHeaderBytes must be between 1 and %d, got %d", ErrInvalidConfig, MaxHeaderLimit, c.MaxHeaderBytes)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	return nil
}

// NotifyChannel is the PostgreSQL notification channel for an outbox table: the table name with '.' replaced
// by '_' (hashed when that would exceed PostgreSQL's 63-byte identifier limit). Relays LISTEN on it.
func NotifyChannel(table string) string {
	ch := strings.ReplaceAll(table, ".", "_")
	if len(ch) <= dialect.MaxIdentLen {
		return ch
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(table))
	return fmt.Sprintf("txbox_outbox_%016x", h.Sum64())
}
