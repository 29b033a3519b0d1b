package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/relay"
)

// Relay counts a relay's work. Use ObserveBatch as relay.Config.OnBatch and ObserveBreaker as
// relay.Config.OnBreaker.
type Relay struct {
	published, failed, dead, batchErrors prometheus.Counter
	batchDuration                        prometheus.Histogram
	// The relay under faults.
	connErrors, unavailable, lost prometheus.Counter
	breakerOpen                   *prometheus.GaugeVec
	breakerOpens                  *prometheus.CounterVec
}

// NewRelay creates the relay metrics and registers them with reg.
func NewRelay(reg prometheus.Registerer) (*Relay, error) {
	m := &Relay{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "txbox_relay_published_total", Help: "Outbox rows published and confirmed by the broker.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "txbox_relay_failed_total", Help: "Failed publishes, scheduled for a retry with backoff.",
		}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "txbox_relay_dead_total", Help: "Outbox rows moved to the dead-letter table.",
		}),
		batchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "txbox_relay_batch_errors_total", Help: "Relay batches that failed on the database (their rows are retried).",
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "txbox_relay_batch_duration_seconds",
			Help:    "Wall time of relay batches: claim, publish and the final transaction.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. ~33s
		}),
	}
	m.connErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "txbox_relay_connection_errors_total", Help: "Relay batches that failed because the database connection was lost or refused.",
	})
	m.unavailable = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "txbox_relay_unavailable_total",
		Help: "Rows given back or held because their broker was unavailable (no attempt counted).",
	})
	m.lost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "txbox_relay_lease_lost_total",
		Help: "Rows a batch no longer leased when it finished (published again after their lease).",
	})
	m.breakerOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "txbox_relay_breaker_open", Help: "1 while the relay holds a topic's rows because its broker is unavailable.",
	}, []string{"topic"})
	m.breakerOpens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "txbox_relay_breaker_opened_total", Help: "Times a topic's circuit breaker opened.",
	}, []string{"topic"})
	if err := registerAll(reg, m.published, m.failed, m.dead, m.batchErrors, m.batchDuration, m.connErrors,
		m.unavailable, m.lost, m.breakerOpen, m.breakerOpens); err != nil {
		return nil, err
	}
	return m, nil
}

// ObserveBreaker records a breaker's change; it has the signature of relay.Config.OnBreaker.
func (m *Relay) ObserveBreaker(c relay.BreakerChange) {
	if c.Open {
		m.breakerOpen.WithLabelValues(c.Topic).Set(1)
		m.breakerOpens.WithLabelValues(c.Topic).Inc()
		return
	}
	m.breakerOpen.WithLabelValues(c.Topic).Set(0)
}

// ObserveBatch records one batch; it has the signature of relay.Config.OnBatch.
func (m *Relay) ObserveBatch(b relay.BatchInfo) {
	if b.Err == nil {
		m.published.Add(float64(b.Published))
	} else {
		m.batchErrors.Inc()
		if errors.Is(b.Err, dialect.ErrConnection) {
			m.connErrors.Inc()
		}
	}
	m.unavailable.Add(float64(b.Unavailable))
	m.lost.Add(float64(b.Lost))
	m.failed.Add(float64(b.Failed))
	m.dead.Add(float64(b.Buried))
	m.batchDuration.Observe(b.Duration.Seconds())
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
