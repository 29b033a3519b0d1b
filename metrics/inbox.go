package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/inbox"
)

// Inbox counts inbox deliveries by consumer and result. Use ObserveProcess as inbox.Config.OnProcess; one Inbox
// metrics value can serve several inboxes (the consumer is a label).
type Inbox struct {
	deliveries *prometheus.CounterVec
	handler    *prometheus.HistogramVec
}

// NewInbox creates the inbox metrics and registers them with reg.
func NewInbox(reg prometheus.Registerer) (*Inbox, error) {
	m := &Inbox{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "txbox_inbox_deliveries_total",
			Help: "Inbox deliveries by result: processed, duplicate, parked, conflict (same key, other payload), failed.",
		}, []string{"consumer", "result"}),
		handler: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "txbox_inbox_handler_duration_seconds",
			Help:    "Time spent inside inbox handlers per delivery.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18), // 0.5ms .. ~65s
		}, []string{"consumer"}),
	}
	if err := registerAll(reg, m.deliveries, m.handler); err != nil {
		return nil, err
	}
	return m, nil
}

// ObserveProcess records one Process call; it has the signature of inbox.Config.OnProcess.
func (m *Inbox) ObserveProcess(p inbox.ProcessInfo) {
	m.deliveries.WithLabelValues(p.Consumer, resultLabel(p)).Inc()
	if p.Handler > 0 {
		m.handler.WithLabelValues(p.Consumer).Observe(p.Handler.Seconds())
	}
}

func resultLabel(p inbox.ProcessInfo) string {
	if p.Err != nil {
		if errors.Is(p.Err, inbox.ErrFingerprintMismatch) {
			return "conflict"
		}
		return "failed"
	}
	switch p.Result {
	case inbox.Processed:
		return "processed"
	case inbox.Duplicate:
		return "duplicate"
	case inbox.Parked:
		return "parked"
	}
	return "failed"
}
