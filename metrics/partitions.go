package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// RegisterPartitions registers gauges that read, at every scrape, the state of the installation's
// time-partitioned tables (the inbox keys and the published outbox rows; see package inbox, "Partitioned
// retention"), labelled table="inbox" or table="published":
//
//	txbox_partition_catchall_rows  rows in the catch-all partition: written while their partition was missing
//	txbox_partition_ahead_seconds  how far past the database's clock the newest partition reaches; at 0 new
//	                               rows go to the catch-all (alert well before: the purger is not running)
//	txbox_partition_count          partitions, the catch-all left out
//
// Unpartitioned tables report nothing. A scrape that cannot read the tables fails, as RegisterBacklog's does.
func RegisterPartitions(reg prometheus.Registerer, db dialect.DBTX, d dialect.Dialect, prefix string) error {
	t, err := dialect.TablesFor(prefix)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	s, err := store.New(d, t)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	l := prometheus.Labels{"prefix": t.Prefix}
	return reg.Register(&partitions{db: db, s: s,
		catchAll: prometheus.NewDesc("txbox_partition_catchall_rows",
			"Rows in the catch-all partition of a time-partitioned table: written while their partition was missing.", []string{"table"}, l),
		ahead: prometheus.NewDesc("txbox_partition_ahead_seconds",
			"How far past the database's clock the newest partition reaches (0: new rows go to the catch-all).", []string{"table"}, l),
		count: prometheus.NewDesc("txbox_partition_count", "Partitions of a time-partitioned table, the catch-all left out.", []string{"table"}, l),
	})
}

type partitions struct {
	db                     dialect.DBTX
	s                      store.Store
	catchAll, ahead, count *prometheus.Desc
}

func (p *partitions) Describe(ch chan<- *prometheus.Desc) {
	ch <- p.catchAll
	ch <- p.ahead
	ch <- p.count
}

func (p *partitions) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ScrapeTimeout)
	defer cancel()
	for _, tb := range []struct {
		label string
		table store.PartitionedTable
	}{{"inbox", store.InboxKeysTable}, {"published", store.PublishedTable}} {
		if err := p.collect(ctx, ch, tb.label, tb.table); err != nil {
			ch <- prometheus.NewInvalidMetric(p.catchAll, err)
			return
		}
	}
}

func (p *partitions) collect(ctx context.Context, ch chan<- prometheus.Metric, label string, table store.PartitionedTable) error {
	st, err := p.s.PartitionState(ctx, p.db, table)
	if err != nil || st.Mode == store.Unpartitioned || st.Period == 0 {
		return err
	}
	parts, err := p.s.PartitionList(ctx, p.db, table, st.Period)
	if err != nil {
		return err
	}
	n, _, _, err := p.s.PartitionCatchAllRows(ctx, p.db, table, st.Period)
	if err != nil {
		return err
	}
	count, ahead := 0, time.Duration(0)
	for _, pt := range parts {
		if pt.CatchAll {
			continue
		}
		count++
		ahead = max(ahead, store.BucketStart(pt.Hi, st.Period).Sub(st.Now))
	}
	ch <- prometheus.MustNewConstMetric(p.catchAll, prometheus.GaugeValue, float64(n), label)
	ch <- prometheus.MustNewConstMetric(p.ahead, prometheus.GaugeValue, ahead.Seconds(), label)
	ch <- prometheus.MustNewConstMetric(p.count, prometheus.GaugeValue, float64(count), label)
	return nil
}
