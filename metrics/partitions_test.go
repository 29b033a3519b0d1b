package metrics_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/metrics"
)

// The partition gauges say when keys go to the catch-all partition (no partition made yet) and how far ahead
// the partitions reach once the purger made them.
func TestPartitionMetrics(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		if err := metrics.RegisterPartitions(reg, db, db.Dialect, ""); err != nil {
			t.Fatal(err)
		}
		ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: "c"})
		if err != nil {
			t.Fatal(err)
		}
		nop := func(context.Context, *sqlx.Tx) error { return nil }
		for _, k := range []string{"a", "b", "c"} {
			if _, err := ib.Process(ctx, inbox.Delivery{Key: k}, nop); err != nil {
				t.Fatal(err)
			}
		}
		inboxLabel := map[string]string{"table": "inbox"}
		if v, ok := value(t, reg, "txbox_partition_catchall_rows", inboxLabel); !ok || v != 3 {
			t.Errorf("catch-all rows before any partition = %v (found %v), want 3", v, ok)
		}
		if v, ok := value(t, reg, "txbox_partition_ahead_seconds", inboxLabel); !ok || v != 0 {
			t.Errorf("ahead before any partition = %v (found %v), want 0", v, ok)
		}
		if _, err := ib.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		if v, _ := value(t, reg, "txbox_partition_catchall_rows", inboxLabel); v != 0 {
			t.Errorf("catch-all rows after the purger ran = %v, want 0", v)
		}
		if v, _ := value(t, reg, "txbox_partition_ahead_seconds", inboxLabel); v < 2*24*3600 {
			t.Errorf("ahead after the purger ran = %vs, want at least two days", v)
		}
		if v, _ := value(t, reg, "txbox_partition_count", inboxLabel); v < 3 {
			t.Errorf("partitions = %v, want at least 3", v)
		}
	}, testdb.Partitioned(true))
}
