package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/relay"
)

// Relay counts a relay's work. Use ObserveBatch as relay.Config.OnBatch.
type Relay struct {
	published, failed, dead, batchErrors prometheus.Counter
	batchDuration                        prometheus.Histogram
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
	if err := registerAll(reg, m.published, m.failed, m.dead, m.batchErrors, m.batchDuration); err != nil {
		return nil, err
	}
	return m, nil
}

// ObserveBatch records one batch; it has the signature of relay.Config.OnBatch.
func (m *Relay) ObserveBatch(b relay.BatchInfo) {
	if b.Err == nil {
		m.published.Add(float64(b.Published))
	} else {
		m.batchErrors.Inc()
	}
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
