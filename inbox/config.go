package inbox

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/dialect"
)

// Config configures an Inbox. Only Dialect and Consumer are required; every other field documents its default,
// which New fills in for the zero value.
type Config struct {
	// Dialect is the database family of the *sqlx.DB given to New: dialect.MySQL or dialect.Postgres. Required.
	Dialect dialect.Dialect
	// Consumer scopes keys: the same key processed by two consumers is two effects. Use one name per logical
	// consumer (e.g. the RocketMQ consumer group, "order-service"), stable across deployments. Required; at
	// most dialect.MaxConsumerBytes bytes of UTF-8 without NUL bytes.
	Consumer string

	// Prefix names the installation's tables (see dialect.TablesFor): <prefix>_inbox, <prefix>_inbox_attempts and
	// <prefix>_inbox_dead, created by package migrations with the same prefix. Default "txbox".
	Prefix string

	// HandlerTimeout bounds one Process (or Replay) call: the handler, the commit and any retries after
	// deadlocks. When it passes, the handler's ctx ends and the transaction is rolled back at once, even if
	// the handler is stuck outside the database, so the key's lock is released; Process returns an error
	// matching ErrHandlerTimeout, which counts as a failed attempt. (A delivery that spent the time waiting
	// for another delivery of the same key gets the same error, not counted: its handler never ran.) Choose
	// it below the broker's consume timeout, with a margin, so that the transaction is gone before the broker
	// redelivers: RocketMQ's consumer default is 15 minutes, and a redelivery that arrives while the first
	// delivery still holds the key waits for it. Shorter is better when handlers are quick: a stuck handler
	// holds its row locks until then. Default 1 minute.
	HandlerTimeout time.Duration
	// MaxAttempts is how many failed deliveries of one key (handler errors, panics, timeouts) are tolerated
	// before the message is parked in DeadTable. Failures of the database itself (connection lost, schema
	// missing, deadlocks that exhausted RetryLimit) and cancellation of the caller's ctx are not counted.
	// Default 10.
	MaxAttempts int
	// RetryLimit is how many times one Process call retries after a deadlock, lock wait timeout or
	// serialization failure (dialect.ErrRetryable), in a new transaction, running the handler again. Default 8; -1 disables retries.
	RetryLimit int
	// RetryBackoff is the wait before the first such retry; it doubles each time up to RetryBackoffMax, and
	// each wait is drawn at random from its upper half so that colliding deliveries spread out.
	// Defaults 10ms and 1s.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration

	// ClaimWindow is W, the longest a claiming transaction may stay open after it recorded its key, with the
	// partitioned layout (see "Partitioned retention" in the package doc): a claim within ClaimWindow of a
	// partition boundary also records its key in the partition after the boundary, so that two concurrent
	// deliveries always meet on one partition's primary key. It must exceed HandlerTimeout, which ends the
	// transaction; the rest is the margin for a commit sent just before the deadline to reach the database.
	// A longer window costs a second row for more of the claims (W/P of them, P the partition period).
	// Default HandlerTimeout + DefaultClaimMargin.
	ClaimWindow time.Duration

	// Retention is how long a processed key is kept, and so how late a redelivery is still recognised as a
	// duplicate. It must outlast the broker's redelivery horizon: RocketMQ retries 16 times over about
	// 4h46m, and a producer retry or a replayed backlog can come later. At least 1 hour. Default 7 days.
	// With the partitioned layout the table keeps keys for the longest Retention of the consumers that share it
	// (a consumer's own is a lower bound), and a new partitioned table's period derives from the first
	// Retention it sees (a seventh of it: one partition a day for 7 days).
	Retention time.Duration
	// PurgeBatchSize is how many keys one Purge statement deletes, each batch in its own short transaction.
	// Between 1 and 10000. Default 1000.
	PurgeBatchSize int
	// PurgeInterval is how often RunPurger purges. Default 1 hour.
	PurgeInterval time.Duration

	// MaxPayloadBytes is the largest payload Process accepts (a parked message's payload is stored). Default
	// 4 MiB, RocketMQ's default maximum message size; at most MaxPayloadLimit. A broker can deliver more than
	// its own limit (it checks the compressed body), so a consumer that must take such messages raises it. A
	// parked payload the database cannot hold whole is cut (see DeadLetter.Truncated).
	MaxPayloadBytes int

	// Logger receives the inbox's warnings (messages parked, failures that could not be counted) and debug
	// traces. Payloads are never logged. Default: discard everything.
	Logger *slog.Logger

	// Propagator extracts trace context (W3C traceparent/tracestate) from Delivery.Headers into the ctx the
	// handler receives, so a handler's spans continue the trace that enqueued the message (see package
	// outbox). Default propagation.TraceContext{}; propagation.NewCompositeTextMapPropagator() turns it off.
	Propagator propagation.TextMapPropagator
	// OnProcess, if set, is called at the end of every Process call with its outcome, and for every delivery of
	// a ProcessBatch call at its end, from the caller's goroutine (package metrics uses it). It must be quick and must not call the Inbox. Default: none.
	OnProcess func(ProcessInfo)
	// TracerProvider makes Process's span ("process <topic>", kind consumer, the messaging semantic
	// conventions, with the consumer and the result): a child of the context the message carried (see
	// Propagator), linked to it. Only the OpenTelemetry API is used. Default otel.GetTracerProvider(), a no-op
	// until an SDK is installed.
	TracerProvider trace.TracerProvider
}

// ProcessInfo describes one finished Process call, for Config.OnProcess.
type ProcessInfo struct {
	Consumer string
	Key      string
	Result   Result
	// Err is Process's error (nil for Processed, Duplicate and Parked).
	Err error
	// Handler is the time spent inside the handler, over every attempt of this call (0 when it did not run).
	Handler time.Duration
}

// Defaults filled in by New.
const (
	DefaultHandlerTimeout  = time.Minute
	DefaultMaxAttempts     = 10
	DefaultRetryLimit      = 8
	DefaultRetryBackoff    = 10 * time.Millisecond
	DefaultRetryBackoffMax = time.Second
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultPurgeBatchSize  = 1000
	DefaultPurgeInterval   = time.Hour
	DefaultMaxPayloadBytes = 4 << 20
	// DefaultClaimMargin is what the default ClaimWindow adds to HandlerTimeout.
	DefaultClaimMargin = time.Minute

	// MinRetention is the shortest Retention New accepts.
	MinRetention = time.Hour
	// MaxPurgeBatchSize is the largest PurgeBatchSize New accepts.
	MaxPurgeBatchSize = 10000
	// MaxPayloadLimit is the largest MaxPayloadBytes New accepts: a delivery is held in memory whole, hashed,
	// and stored when it is parked.
	MaxPayloadLimit = 64 << 20
)

// withDefaults returns c with zero values replaced by defaults, or an error naming the first bad field.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.Dialect == nil {
		return bad("Dialect is required (dialect.MySQL or dialect.Postgres)")
	}
	if err := dialect.CheckText("Consumer", c.Consumer, dialect.MaxConsumerBytes, ErrInvalidConfig); err != nil {
		return c, err
	}
	if c.Prefix == "" {
		c.Prefix = dialect.DefaultPrefix
	}
	if _, err := dialect.TablesFor(c.Prefix); err != nil {
		return bad("Prefix: %v", err)
	}
	setDur := func(field string, v *time.Duration, def, min time.Duration) error {
		switch {
		case *v == 0:
			*v = def
		case *v < min:
			return fmt.Errorf("%w: %s must be at least %s, got %s", ErrInvalidConfig, field, min, *v)
		}
		return nil
	}
	setInt := func(field string, v *int, def, min, max int) error {
		switch {
		case *v == 0:
			*v = def
		case *v < min || *v > max:
			return fmt.Errorf("%w: %s must be between %d and %d, got %d", ErrInvalidConfig, field, min, max, *v)
		}
		return nil
	}
	for _, err := range []error{
		setDur("HandlerTimeout", &c.HandlerTimeout, DefaultHandlerTimeout, time.Millisecond),
		setInt("MaxAttempts", &c.MaxAttempts, DefaultMaxAttempts, 1, 1000),
		setInt("RetryLimit", &c.RetryLimit, DefaultRetryLimit, -1, 100),
		setDur("RetryBackoff", &c.RetryBackoff, DefaultRetryBackoff, time.Microsecond),
		setDur("RetryBackoffMax", &c.RetryBackoffMax, DefaultRetryBackoffMax, time.Microsecond),
		setDur("Retention", &c.Retention, DefaultRetention, MinRetention),
		setInt("PurgeBatchSize", &c.PurgeBatchSize, DefaultPurgeBatchSize, 1, MaxPurgeBatchSize),
		setDur("PurgeInterval", &c.PurgeInterval, DefaultPurgeInterval, time.Millisecond),
		setInt("MaxPayloadBytes", &c.MaxPayloadBytes, DefaultMaxPayloadBytes, 1, MaxPayloadLimit),
	} {
		if err != nil {
			return c, err
		}
	}
	if c.RetryLimit < 0 {
		c.RetryLimit = 0
	}
	switch {
	case c.ClaimWindow == 0:
		c.ClaimWindow = c.HandlerTimeout + DefaultClaimMargin
	case c.ClaimWindow <= c.HandlerTimeout:
		return bad("ClaimWindow (%s) must be longer than HandlerTimeout (%s): a transaction may live that long", c.ClaimWindow, c.HandlerTimeout)
	}
	if c.RetryBackoffMax < c.RetryBackoff {
		return bad("RetryBackoffMax (%s) is shorter than RetryBackoff (%s)", c.RetryBackoffMax, c.RetryBackoff)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}
