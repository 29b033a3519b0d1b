package inbox

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/txbox/txbox/dialect"
)

// EffectsConfig configures Effects. Only Consumer is required; every other field documents its default, which
// NewEffects fills in for the zero value.
type EffectsConfig struct {
	// Consumer scopes keys: the same key begun by two consumers is two records. Use one name per logical
	// consumer (e.g. the RocketMQ consumer group), stable across deployments. Required; at most
	// dialect.MaxConsumerBytes bytes of UTF-8 without NUL bytes.
	Consumer string

	// Lease is how long a run holds a key: deliveries of the key meanwhile get ErrBusy, and once it has passed
	// without the run completing or releasing the key, the next delivery takes it over (and the effect runs
	// again, with the same idempotency key). Run's effect function gets a ctx that ends when the lease does.
	// Choose it longer than the effect ever takes, with a margin; shorter is better for recovery after a crash,
	// which waits the lease out. At least 10ms and shorter than Retention. Default 1 minute.
	Lease time.Duration
	// MaxAttempts is how many failed runs of one key (effect errors, panics, leases that expired) are tolerated
	// before the key is parked with its delivery. Between 1 and 1000. Default 10.
	MaxAttempts int
	// MaxResultBytes is the largest result Complete saves. Between 1 and MaxEffectResultBytes. Default 4096.
	MaxResultBytes int
	// MaxPayloadBytes is the largest payload Begin accepts (a parked delivery's payload is stored). Default
	// 4 MiB, RocketMQ's default maximum message size.
	MaxPayloadBytes int

	// Retention is how long a record is kept after its key was first begun (at least: Redis counts from its
	// last change), and so how late a redelivery is still recognised as a duplicate. It must outlast the broker's redelivery horizon (see Config.Retention).
	// SQL stores delete older records with Purge; Redis lets them expire. Parked records are kept until
	// replayed or dropped. At least 1 hour. Default 7 days.
	Retention time.Duration
	// PurgeBatchSize is how many records one Purge batch deletes (SQL). Between 1 and 10000. Default 1000.
	PurgeBatchSize int
	// PurgeInterval is how often RunPurger purges. Default 1 hour.
	PurgeInterval time.Duration

	// Logger receives warnings (keys parked, taken over, completions that lost their lease) and debug traces.
	// Payloads and results are never logged. Default: discard everything.
	Logger *slog.Logger
	// Propagator extracts trace context from Delivery.Headers into the ctx Run's effect function receives.
	// Default propagation.TraceContext{}.
	Propagator propagation.TextMapPropagator
}

// Defaults and limits of EffectsConfig.
const (
	DefaultLease          = time.Minute
	DefaultMaxResultBytes = 4096
	// MinLease is the shortest Lease NewEffects accepts.
	MinLease = 10 * time.Millisecond
	// MaxEffectResultBytes is the largest MaxResultBytes: what a MySQL BLOB holds.
	MaxEffectResultBytes = 65535
)

// withDefaults returns c with zero values replaced by defaults, or an error naming the first bad field.
func (c EffectsConfig) withDefaults() (EffectsConfig, error) {
	if err := dialect.CheckText("Consumer", c.Consumer, dialect.MaxConsumerBytes, ErrInvalidConfig); err != nil {
		return c, err
	}
	durations := []struct {
		name     string
		v        *time.Duration
		def, min time.Duration
	}{
		{"Lease", &c.Lease, DefaultLease, MinLease},
		{"Retention", &c.Retention, DefaultRetention, MinRetention},
		{"PurgeInterval", &c.PurgeInterval, DefaultPurgeInterval, time.Millisecond},
	}
	for _, d := range durations {
		if *d.v == 0 {
			*d.v = d.def
		} else if *d.v < d.min {
			return c, fmt.Errorf("%w: %s must be at least %s, got %s", ErrInvalidConfig, d.name, d.min, *d.v)
		}
	}
	ints := []struct {
		name          string
		v             *int
		def, min, max int
	}{
		{"MaxAttempts", &c.MaxAttempts, DefaultMaxAttempts, 1, 1000},
		{"MaxResultBytes", &c.MaxResultBytes, DefaultMaxResultBytes, 1, MaxEffectResultBytes},
		{"MaxPayloadBytes", &c.MaxPayloadBytes, DefaultMaxPayloadBytes, 1, 1 << 30},
		{"PurgeBatchSize", &c.PurgeBatchSize, DefaultPurgeBatchSize, 1, MaxPurgeBatchSize},
	}
	for _, n := range ints {
		if *n.v == 0 {
			*n.v = n.def
		} else if *n.v < n.min || *n.v > n.max {
			return c, fmt.Errorf("%w: %s must be between %d and %d, got %d", ErrInvalidConfig, n.name, n.min, n.max, *n.v)
		}
	}
	if c.Lease >= c.Retention {
		return c, fmt.Errorf("%w: Lease (%s) must be shorter than Retention (%s)", ErrInvalidConfig, c.Lease, c.Retention)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	return c, nil
}
