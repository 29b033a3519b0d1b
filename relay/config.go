package relay

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/dialect"
)

// Config configures a Relay. Dialect and Publisher are required; every other field has a default.
type Config struct {
	// Dialect is the database family: dialect.MySQL or dialect.Postgres. Required.
	Dialect dialect.Dialect
	// Publisher sends records to the broker. Required.
	Publisher Publisher
	// Prefix names the installation's tables (see dialect.TablesFor): the relay drains <prefix>_outbox. It must
	// be the prefix the producers' outbox.Config uses. Default "txbox".
	Prefix string
	// Retention keeps published rows instead of deleting them: when positive, a confirmed row is moved to
	// <prefix>_outbox_published (with the time it was published) in the transaction that records the publish, and Run
	// deletes rows published longer than Retention ago, in batches, about every min(Retention, 1m) (also on
	// demand: Relay.PurgePublished). For audits and for answering "was it sent, when?". Default 0: confirmed
	// rows are deleted at once.
	Retention time.Duration
	// BatchSize is the most rows one batch claims. Default 500; 1 to 10000.
	BatchSize int
	// Workers is the number of batch loops, each on a database connection of its own (plus one listening
	// connection on PostgreSQL with pgx). Default 2; 1 to 64. The *sqlx.DB pool must allow Workers+1
	// connections.
	Workers int
	// PublishConcurrency is the most Publish calls in flight per worker. Default 64; 1 to 4096.
	PublishConcurrency int
	// MaxBatchBytes bounds the payload bytes one batch holds: a claim stops taking rows when the next row's
	// payload would exceed it, but always takes at least one row. A relay's payloads in memory are therefore
	// at most about Workers × MaxBatchBytes, plus the largest payload per worker (a row larger than the
	// budget goes alone) and what the Publisher copies (RocketMQ: the compressed body). The default, 32 MiB,
	// keeps a default relay (2 workers) under ~100 MiB of payloads whatever their size, and 64 workers under
	// ~2 GiB: room beside a database on a 24 GiB machine. It costs nothing for small payloads (500 rows of
	// 64 KiB fit). Default 32 MiB; at least 1.
	MaxBatchBytes int64
	// Lease is how long the rows a batch claims stay leased to it. The claim commits them as leased (their
	// lease end becomes the database's now + Lease, their claim_token the batch's token) before anything is
	// published, so no other relay or worker takes them, also when this relay loses its database
	// connection; the batch stops publishing LeaseMargin (Lease/5) before the lease ends as its own clock
	// measures it, renews the lease while it publishes, and deletes or records its rows only where they are
	// still its own. The rows of a relay that died (or whose final statements failed) are published again by
	// another relay once their lease ends: Lease bounds that takeover. Default 5s; at least 1s.
	Lease time.Duration
	// ProbeInterval is how often the relay tries one publish to a topic whose broker is unavailable (the
	// Publisher returned errors wrapping ErrUnavailable): the topic's other rows are held without counting
	// attempts meanwhile, and the first publish that succeeds makes them due again at once. Default 200ms; at
	// least 10ms.
	ProbeInterval time.Duration
	// MinPollInterval is the wait after a pass that found nothing while messages flow (some worker of the
	// relay found rows within the last MaxPollInterval); once the relay is quiet the wait doubles up to
	// MaxPollInterval, and it returns to zero when a pass finds rows. Default 10ms; at least 1ms.
	MinPollInterval time.Duration
	// MaxPollInterval bounds the idle wait. On PostgreSQL with a notification listener, quiet relays wait this
	// long between polls (notifications wake them at once; polling only finds rows whose DeliverAt or backoff
	// passed, and the messages of a window whose notifying transaction rolled back: see
	// outbox.Config.NotifyInterval). Default 1s; at least MinPollInterval.
	MaxPollInterval time.Duration
	// RescanInterval is how often a worker restarts its scan of rows without a sharding key from the lowest
	// id, to find rows that committed out of id order behind its position. A pass that comes up short also
	// restarts it. Default 1s; at least 10ms.
	RescanInterval time.Duration
	// MaxAttempts is how many failed publishes a row gets before it moves to the dead-letter table. Default 16;
	// 1 to 1000.
	MaxAttempts int
	// MinBackoff is the delay after a first failure; it doubles per failure up to MaxBackoff, and each delay is
	// drawn uniformly from [d/2, d] (jitter). Failures that wrap ErrUnavailable count no attempt and add no
	// backoff. Default 1s; at least 1ms.
	MinBackoff time.Duration
	// MaxBackoff bounds the retry delay. Default 5m; at least MinBackoff.
	MaxBackoff time.Duration
	// PublishTimeout bounds the publishing of one batch: every Publish call of a batch gets the same deadline,
	// PublishTimeout after the batch starts publishing (earlier when its lease cannot be renewed), and rows not
	// started by then are released untouched (no attempt counted). Default 30s; at least 100ms.
	PublishTimeout time.Duration
	// Logger receives the relay's logs: failures at Warn, aggregated per batch and at most about one line per
	// second per kind (the lines say how many were left out), each failed row at Debug, batches at Debug; never
	// payloads. Default: none.
	Logger *slog.Logger
	// OnBatch, if set, is called after each batch ends (committed or not), from the worker's goroutine. Tests
	// use it to wait for work without sleeping. Default: none.
	OnBatch func(BatchInfo)
	// TracerProvider makes the span of each publish ("send <topic>", the messaging semantic conventions), a
	// child of the context that outbox.Enqueue wrote into the record's traceparent header. Only the
	// OpenTelemetry API is used. Default otel.GetTracerProvider(), a no-op until an SDK is installed.
	TracerProvider trace.TracerProvider
	// OnBreaker, if set, is called when the relay stops publishing a topic because its broker is unavailable
	// and when it resumes, from the goroutine that saw the change. Default: none.
	OnBreaker func(BreakerChange)
}

// BreakerChange reports that a topic's circuit breaker opened (the relay holds the topic's rows and probes) or
// closed (the broker answered; the held rows are due again), for Config.OnBreaker.
type BreakerChange struct {
	Topic string
	Open  bool
	// Err is the error that opened the breaker (Open only).
	Err error
	// Outage is how long the breaker was open (closing only).
	Outage time.Duration
}

// BatchInfo describes one finished batch, for Config.OnBatch.
type BatchInfo struct {
	Worker    int
	Claimed   int // rows claimed
	Published int // rows the Publisher confirmed (and that were deleted, if Err is nil)
	Failed    int // rows that failed and were scheduled for a retry
	Buried    int // rows moved to the dead-letter table
	Held      int // rows given back untouched: an earlier row of their sharding key failed, or time ran out
	// Unavailable counts rows whose broker was unavailable (ErrUnavailable, or the topic's breaker was
	// open): given back or held for the outage, no attempt counted.
	Unavailable int
	// Lost counts rows the batch no longer leased when it finished (its lease had ended and another claim took
	// them, or the finish failed): they are published again.
	Lost int
	Err  error // the batch's database error, if any (its publishes then count as unconfirmed)
	// Duration is the batch's wall time: claiming, publishing and the final transaction.
	Duration time.Duration
}

// Defaults filled in by New.
const (
	DefaultBatchSize          = 500
	DefaultWorkers            = 2
	DefaultPublishConcurrency = 64
	DefaultMaxAttempts        = 16
	DefaultMaxBatchBytes      = 32 << 20
	DefaultLease              = 5 * time.Second
	DefaultProbeInterval      = 200 * time.Millisecond
	DefaultMinPollInterval    = 10 * time.Millisecond
	DefaultMaxPollInterval    = time.Second
	DefaultRescanInterval     = time.Second
	DefaultMinBackoff         = time.Second
	DefaultMaxBackoff         = 5 * time.Minute
	DefaultPublishTimeout     = 30 * time.Second
)

// Floors: New refuses shorter durations (ErrInvalidConfig). Below them a setting does nothing useful and can
// keep a relay busy without progress (a PublishTimeout of 1ns ends every batch before its first publish).
const (
	LeaseFloor           = time.Second
	ProbeIntervalFloor   = 10 * time.Millisecond
	PublishTimeoutFloor  = 100 * time.Millisecond
	MinBackoffFloor      = time.Millisecond
	MinPollIntervalFloor = time.Millisecond
	RescanIntervalFloor  = 10 * time.Millisecond
)

// LeaseMargin is how long before its lease ends (as the relay's clock measures it) a batch stops publishing:
// Lease/5. It covers the difference in rate between the relay's and the database's clocks over a lease and a
// Publish call returning a little after its context ended.
func LeaseMargin(lease time.Duration) time.Duration { return lease / 5 }

// withDefaults returns c with zero values replaced by defaults, or an error naming the first bad field.
func (c Config) withDefaults() (Config, error) {
	if c.Dialect == nil {
		return c, fmt.Errorf("%w: Dialect is required (dialect.MySQL or dialect.Postgres)", ErrInvalidConfig)
	}
	if c.Publisher == nil {
		return c, fmt.Errorf("%w: Publisher is required", ErrInvalidConfig)
	}
	if c.Prefix == "" {
		c.Prefix = dialect.DefaultPrefix
	}
	if _, err := dialect.TablesFor(c.Prefix); err != nil {
		return c, fmt.Errorf("%w: Prefix: %w", ErrInvalidConfig, err)
	}
	if c.Retention < 0 {
		return c, fmt.Errorf("%w: Retention must not be negative, got %s", ErrInvalidConfig, c.Retention)
	}
	ints := []struct {
		name     string
		v        *int
		def, max int
	}{
		{"BatchSize", &c.BatchSize, DefaultBatchSize, 10000},
		{"Workers", &c.Workers, DefaultWorkers, 64},
		{"PublishConcurrency", &c.PublishConcurrency, DefaultPublishConcurrency, 4096},
		{"MaxAttempts", &c.MaxAttempts, DefaultMaxAttempts, 1000},
	}
	for _, f := range ints {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 || *f.v > f.max {
			return c, fmt.Errorf("%w: %s must be between 1 and %d, got %d", ErrInvalidConfig, f.name, f.max, *f.v)
		}
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxBatchBytes < 0 {
		return c, fmt.Errorf("%w: MaxBatchBytes must be positive, got %d", ErrInvalidConfig, c.MaxBatchBytes)
	}
	durs := []struct {
		name       string
		v          *time.Duration
		def, floor time.Duration
	}{
		{"Lease", &c.Lease, DefaultLease, LeaseFloor},
		{"ProbeInterval", &c.ProbeInterval, DefaultProbeInterval, ProbeIntervalFloor},
		{"MinPollInterval", &c.MinPollInterval, DefaultMinPollInterval, MinPollIntervalFloor},
		{"MaxPollInterval", &c.MaxPollInterval, DefaultMaxPollInterval, MinPollIntervalFloor},
		{"RescanInterval", &c.RescanInterval, DefaultRescanInterval, RescanIntervalFloor},
		{"MinBackoff", &c.MinBackoff, DefaultMinBackoff, MinBackoffFloor},
		{"MaxBackoff", &c.MaxBackoff, DefaultMaxBackoff, MinBackoffFloor},
		{"PublishTimeout", &c.PublishTimeout, DefaultPublishTimeout, PublishTimeoutFloor},
	}
	for _, f := range durs {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < f.floor {
			return c, fmt.Errorf("%w: %s must be at least %s, got %s", ErrInvalidConfig, f.name, f.floor, *f.v)
		}
	}
	if c.MaxPollInterval < c.MinPollInterval {
		return c, fmt.Errorf("%w: MaxPollInterval (%s) must not be less than MinPollInterval (%s)", ErrInvalidConfig, c.MaxPollInterval, c.MinPollInterval)
	}
	if c.MaxBackoff < c.MinBackoff {
		return c, fmt.Errorf("%w: MaxBackoff (%s) must not be less than MinBackoff (%s)", ErrInvalidConfig, c.MaxBackoff, c.MinBackoff)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	return c, nil
}
