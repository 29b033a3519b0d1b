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
	// MinPollInterval is the wait after a pass that found nothing while messages flow (some worker of the
	// relay found rows within the last MaxPollInterval); once the relay is quiet the wait doubles up to
	// MaxPollInterval, and it returns to zero when a pass finds rows. Default 10ms.
	MinPollInterval time.Duration
	// MaxPollInterval bounds the idle wait. On PostgreSQL with a notification listener, idle relays wait this
	// long between polls (notifications wake them at once; polling only finds rows whose DeliverAt or backoff
	// passed). Default 1s.
	MaxPollInterval time.Duration
	// RescanInterval is how often a worker restarts its scan of rows without a sharding key from the lowest
	// id, to find rows that committed out of id order behind its position. A pass that comes up short also
	// restarts it. Default 1s.
	RescanInterval time.Duration
	// MaxAttempts is how many failed publishes a row gets before it moves to the dead-letter table. Default 16;
	// 1 to 1000.
	MaxAttempts int
	// MinBackoff is the delay after a first failure; it doubles per failure up to MaxBackoff, and each delay is
	// drawn uniformly from [d/2, d] (jitter). Default 1s.
	MinBackoff time.Duration
	// MaxBackoff bounds the retry delay. Default 5m.
	MaxBackoff time.Duration
	// PublishTimeout bounds the publishing of one batch: every Publish call of a batch gets the same deadline,
	// PublishTimeout after the batch starts publishing, and rows not started by then stay in the outbox
	// untouched (no attempt counted). It therefore bounds how long a batch holds its rows. Default 30s.
	PublishTimeout time.Duration
	// Logger receives the relay's logs (errors at Warn, batches at Debug; never payloads). Default: none.
	Logger *slog.Logger
	// OnBatch, if set, is called after each batch ends (committed or not), from the worker's goroutine. Tests
	// use it to wait for work without sleeping. Default: none.
	OnBatch func(BatchInfo)
	// TracerProvider makes the span of each publish ("send <topic>", the messaging semantic conventions), a
	// child of the context that outbox.Enqueue wrote into the record's traceparent header. Only the
	// OpenTelemetry API is used. Default otel.GetTracerProvider(), a no-op until an SDK is installed.
	TracerProvider trace.TracerProvider
}

// BatchInfo describes one finished batch, for Config.OnBatch.
type BatchInfo struct {
	Worker    int
	Claimed   int   // rows claimed
	Published int   // rows the Publisher confirmed (and that were deleted, if Err is nil)
	Failed    int   // rows that failed and were scheduled for a retry
	Buried    int   // rows moved to the dead-letter table
	Held      int   // rows not attempted because an earlier row of their sharding key failed in the batch
	Err       error // the batch's database error, if any (its publishes then count as unconfirmed)
	// Duration is the batch's wall time: claiming, publishing and the final transaction.
	Duration time.Duration
}

// Defaults filled in by New.
const (
	DefaultBatchSize          = 500
	DefaultWorkers            = 2
	DefaultPublishConcurrency = 64
	DefaultMaxAttempts        = 16
	DefaultMinPollInterval    = 10 * time.Millisecond
	DefaultMaxPollInterval    = time.Second
	DefaultRescanInterval     = time.Second
	DefaultMinBackoff         = time.Second
	DefaultMaxBackoff         = 5 * time.Minute
	DefaultPublishTimeout     = 30 * time.Second
)

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
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"MinPollInterval", &c.MinPollInterval, DefaultMinPollInterval},
		{"MaxPollInterval", &c.MaxPollInterval, DefaultMaxPollInterval},
		{"RescanInterval", &c.RescanInterval, DefaultRescanInterval},
		{"MinBackoff", &c.MinBackoff, DefaultMinBackoff},
		{"MaxBackoff", &c.MaxBackoff, DefaultMaxBackoff},
		{"PublishTimeout", &c.PublishTimeout, DefaultPublishTimeout},
	}
	for _, f := range durs {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return c, fmt.Errorf("%w: %s must be positive, got %s", ErrInvalidConfig, f.name, *f.v)
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
