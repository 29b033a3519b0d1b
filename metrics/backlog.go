package metrics

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// ScrapeTimeout bounds the queries one scrape of the backlog gauges runs.
const ScrapeTimeout = 5 * time.Second

// RegisterBacklog registers gauges that read the outbox backlog, its oldest row's age and the dead letters
// (and the inbox size) from the tables of the installation named by prefix ("" for the default, see
// dialect.TablesFor) at every scrape. A scrape that cannot read them reports the error to Prometheus (the
// scrape fails) rather than stale numbers.
func RegisterBacklog(reg prometheus.Registerer, db dialect.DBTX, d dialect.Dialect, prefix string) error {
	t, err := dialect.TablesFor(prefix)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	s, err := store.New(d, t)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return reg.Register(&backlog{db: db, s: s, descs: newBacklogDescs(prometheus.Labels{"prefix": t.Prefix})})
}

type backlog struct {
	db    dialect.DBTX
	s     store.Store
	descs backlogDescs
	// dropped counts the series left out of scrapes because their consumer label collided (see Collect).
	dropped atomic.Int64
}

// backlogDescs describe the gauges of one installation; the constant labels (prefix, and database in a fleet)
// tell installations apart.
type backlogDescs struct{ pending, due, oldest, dead, keys, inboxDead, dropped *prometheus.Desc }

func newBacklogDescs(l prometheus.Labels) backlogDescs {
	return backlogDescs{
		pending:   prometheus.NewDesc("txbox_outbox_pending", "Outbox rows not yet published.", nil, l),
		due:       prometheus.NewDesc("txbox_outbox_due", "Outbox rows due for publishing now.", nil, l),
		oldest:    prometheus.NewDesc("txbox_outbox_oldest_pending_seconds", "Age of the oldest unpublished outbox row.", nil, l),
		dead:      prometheus.NewDesc("txbox_outbox_dead", "Outbox rows in the dead-letter table.", nil, l),
		keys:      prometheus.NewDesc("txbox_inbox_keys", "Inbox keys recorded, by consumer.", []string{"consumer"}, l),
		inboxDead: prometheus.NewDesc("txbox_inbox_dead", "Parked inbox messages, by consumer.", []string{"consumer"}, l),
		dropped: prometheus.NewDesc("txbox_metrics_dropped_series_total",
			"Backlog series left out of scrapes: a consumer name that is not UTF-8 was escaped into another consumer's name.", nil, l),
	}
}

func (b *backlog) Describe(ch chan<- *prometheus.Desc) {
	d := b.descs
	for _, d := range []*prometheus.Desc{d.pending, d.due, d.oldest, d.dead, d.keys, d.inboxDead, d.dropped} {
		ch <- d
	}
}

func (b *backlog) Collect(ch chan<- prometheus.Metric) {
	if err := b.collect(ch); err != nil {
		ch <- prometheus.NewInvalidMetric(b.descs.pending, err)
	}
}

// collect reads the tables and sends the gauges; when they cannot be read it sends nothing and returns the error.
func (b *backlog) collect(ch chan<- prometheus.Metric) error {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	st, err := b.s.Stats(ctx, b.db)
	if err != nil {
		return err
	}
	d := b.descs
	ch <- prometheus.MustNewConstMetric(d.pending, prometheus.GaugeValue, float64(st.Outbox.Pending))
	ch <- prometheus.MustNewConstMetric(d.due, prometheus.GaugeValue, float64(st.Outbox.Due))
	ch <- prometheus.MustNewConstMetric(d.oldest, prometheus.GaugeValue, st.Outbox.OldestPendingAge.Seconds())
	ch <- prometheus.MustNewConstMetric(d.dead, prometheus.GaugeValue, float64(st.Outbox.Dead))
	// Consumer names are stored data: MySQL keeps bytes, which need not be UTF-8, and a label that is not
	// UTF-8 made MustNewConstMetric panic at every scrape. Invalid bytes are written \xNN; a name that then equals
	// another consumer's would make the whole scrape fail as a duplicate series, so it is left out and counted.
	seen := make(map[string]bool, len(st.Inbox.Consumers))
	for _, c := range st.Inbox.Consumers {
		label := labelValue(c.Consumer)
		if seen[label] {
			b.dropped.Add(2)
			continue
		}
		seen[label] = true
		ch <- prometheus.MustNewConstMetric(d.keys, prometheus.GaugeValue, float64(c.Keys), label)
		ch <- prometheus.MustNewConstMetric(d.inboxDead, prometheus.GaugeValue, float64(c.Dead), label)
	}
	ch <- prometheus.MustNewConstMetric(d.dropped, prometheus.CounterValue, float64(b.dropped.Load()))
	return nil
}

// labelValue returns s with every byte that is not part of valid UTF-8 written as \xNN: Prometheus label values
// must be UTF-8.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
