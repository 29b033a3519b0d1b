package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/outbox"
)

// Tables names the tables the backlog gauges read; empty fields mean txbox's defaults.
type Tables struct {
	Outbox, OutboxDead, Inbox, InboxDead string
}

func (t Tables) params() *dialect.StatsParams {
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	return &dialect.StatsParams{
		OutboxTable:     def(t.Outbox, outbox.DefaultTable),
		OutboxDeadTable: def(t.OutboxDead, outbox.DefaultDeadTable),
		InboxTable:      def(t.Inbox, inbox.DefaultTable),
		InboxDeadTable:  def(t.InboxDead, inbox.DefaultDeadTable),
	}
}

// ScrapeTimeout bounds the queries one scrape of the backlog gauges runs.
const ScrapeTimeout = 5 * time.Second

// RegisterBacklog registers gauges that read the outbox backlog, its oldest row's age and the dead letters
// (and the inbox size) from the database at every scrape. A scrape that cannot read them reports the error to
// Prometheus (the scrape fails) rather than stale numbers.
func RegisterBacklog(reg prometheus.Registerer, db dialect.DBTX, d dialect.Dialect, t Tables) error {
	return reg.Register(&backlog{db: db, d: d, p: t.params()})
}

type backlog struct {
	db dialect.DBTX
	d  dialect.Dialect
	p  *dialect.StatsParams
}

var (
	descPending = prometheus.NewDesc("txbox_outbox_pending", "Outbox rows not yet published.", nil, nil)
	descDue     = prometheus.NewDesc("txbox_outbox_due", "Outbox rows due for publishing now.", nil, nil)
	descOldest  = prometheus.NewDesc("txbox_outbox_oldest_pending_seconds", "Age of the oldest unpublished outbox row.", nil, nil)
	descDead    = prometheus.NewDesc("txbox_outbox_dead", "Outbox rows in the dead-letter table.", nil, nil)
	descKeys    = prometheus.NewDesc("txbox_inbox_keys", "Inbox keys recorded, by consumer.", []string{"consumer"}, nil)
	descIDead   = prometheus.NewDesc("txbox_inbox_dead", "Parked inbox messages, by consumer.", []string{"consumer"}, nil)
)

func (b *backlog) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPending, descDue, descOldest, descDead, descKeys, descIDead} {
		ch <- d
	}
}

func (b *backlog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	st, err := b.d.Stats(ctx, b.db, b.p)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPending, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(st.Outbox.Pending))
	ch <- prometheus.MustNewConstMetric(descDue, prometheus.GaugeValue, float64(st.Outbox.Due))
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, st.Outbox.OldestPendingAge.Seconds())
	ch <- prometheus.MustNewConstMetric(descDead, prometheus.GaugeValue, float64(st.Outbox.Dead))
	for _, c := range st.Inbox.Consumers {
		ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(c.Keys), c.Consumer)
		ch <- prometheus.MustNewConstMetric(descIDead, prometheus.GaugeValue, float64(c.Dead), c.Consumer)
	}
}
