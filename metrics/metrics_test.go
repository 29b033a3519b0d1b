package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/metrics"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// value returns the value of the metric name whose labels include want, and whether it was found.
func value(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func enqueue(t *testing.T, db *testdb.DB, n int, topic string) {
	t.Helper()
	ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTxx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := ob.Enqueue(context.Background(), tx, outbox.Message{Topic: topic, Key: fmt.Sprintf("%s-%d", topic, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestRelayAndBacklogMetrics(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		reg := prometheus.NewRegistry()
		rm, err := metrics.NewRelay(reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := metrics.RegisterBacklog(reg, db, db.Dialect, ""); err != nil {
			t.Fatal(err)
		}
		enqueue(t, db, 7, "orders")
		enqueue(t, db, 5, "payments")
		if v, ok := value(t, reg, "txbox_outbox_pending", nil); !ok || v != 12 {
			t.Fatalf("txbox_outbox_pending = %v (found %v), want 12", v, ok)
		}
		r, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Publisher: memory.New(), OnBatch: rm.ObserveBatch})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := r.Drain(context.Background()); err != nil || n != 12 {
			t.Fatalf("Drain = %d, %v", n, err)
		}
		if v, _ := value(t, reg, "txbox_relay_published_total", nil); v != 12 {
			t.Errorf("txbox_relay_published_total = %v, want 12", v)
		}
		if v, _ := value(t, reg, "txbox_relay_batch_duration_seconds", nil); v < 1 {
			t.Errorf("no batch duration observed")
		}
		if v, ok := value(t, reg, "txbox_outbox_pending", nil); !ok || v != 0 {
			t.Errorf("txbox_outbox_pending after drain = %v (found %v), want 0", v, ok)
		}

		// Failures and dead letters move their counters.
		enqueue(t, db, 3, "poison")
		failing := relay.PublisherFunc(func(context.Context, outbox.Record) error { return errors.New("broker says no") })
		r2, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Publisher: failing, MaxAttempts: 1, OnBatch: rm.ObserveBatch})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r2.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if v, _ := value(t, reg, "txbox_relay_dead_total", nil); v != 3 {
			t.Errorf("txbox_relay_dead_total = %v, want 3", v)
		}
		if v, _ := value(t, reg, "txbox_outbox_dead", nil); v != 3 {
			t.Errorf("txbox_outbox_dead = %v, want 3", v)
		}
		rm.ObserveBreaker(relay.BreakerChange{Topic: "orders", Open: true, Err: relay.ErrUnavailable})
		if v, _ := value(t, reg, "txbox_relay_breaker_open", map[string]string{"topic": "orders"}); v != 1 {
			t.Errorf("txbox_relay_breaker_open{topic=orders} = %v after opening, want 1", v)
		}
		rm.ObserveBreaker(relay.BreakerChange{Topic: "orders", Outage: time.Second})
		if v, _ := value(t, reg, "txbox_relay_breaker_open", map[string]string{"topic": "orders"}); v != 0 {
			t.Errorf("txbox_relay_breaker_open{topic=orders} = %v after closing, want 0", v)
		}
		if v, _ := value(t, reg, "txbox_relay_breaker_opened_total", map[string]string{"topic": "orders"}); v != 1 {
			t.Errorf("txbox_relay_breaker_opened_total{topic=orders} = %v, want 1", v)
		}
		rm.ObserveBatch(relay.BatchInfo{Err: fmt.Errorf("claim: %w", dialect.MySQL.InterpretError(io.ErrUnexpectedEOF)), Unavailable: 4, Lost: 2})
		for name, want := range map[string]float64{"txbox_relay_connection_errors_total": 1,
			"txbox_relay_unavailable_total": 4, "txbox_relay_lease_lost_total": 2} {
			if v, _ := value(t, reg, name, nil); v != want {
				t.Errorf("%s = %v, want %v", name, v, want)
			}
		}
		if _, err := metrics.NewRelay(reg); err == nil {
			t.Error("registering the relay metrics twice on one registry succeeded")
		}
	})
}

func TestInboxMetrics(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		reg := prometheus.NewRegistry()
		im, err := metrics.NewInbox(reg)
		if err != nil {
			t.Fatal(err)
		}
		ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: "billing", OnProcess: im.ObserveProcess, MaxAttempts: 2})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		ok := func(context.Context, *sqlx.Tx) error { return nil }
		fail := func(context.Context, *sqlx.Tx) error { return errors.New("boom") }
		steps := []struct {
			d inbox.Delivery
			h inbox.Handler
		}{
			{inbox.Delivery{Key: "1/pay", Payload: []byte("a")}, ok},   // processed
			{inbox.Delivery{Key: "1/pay", Payload: []byte("a")}, ok},   // duplicate
			{inbox.Delivery{Key: "1/pay", Payload: []byte("b")}, ok},   // conflict
			{inbox.Delivery{Key: "2/pay", Payload: []byte("x")}, fail}, // failed
			{inbox.Delivery{Key: "2/pay", Payload: []byte("x")}, fail}, // parked (MaxAttempts 2)
		}
		for _, s := range steps {
			_, _ = ib.Process(ctx, s.d, s.h)
		}
		for result, want := range map[string]float64{"processed": 1, "duplicate": 1, "conflict": 1, "failed": 1, "parked": 1} {
			if v, _ := value(t, reg, "txbox_inbox_deliveries_total", map[string]string{"consumer": "billing", "result": result}); v != want {
				t.Errorf("deliveries{result=%s} = %v, want %v", result, v, want)
			}
		}
		// The handler ran three times: once successfully, twice failing.
		if v, _ := value(t, reg, "txbox_inbox_handler_duration_seconds", map[string]string{"consumer": "billing"}); v != 3 {
			t.Errorf("handler duration samples = %v, want 3", v)
		}
	})
}

// Issue 11, item 5: a consumer name in the inbox table that is not UTF-8 (MySQL stores bytes) made every scrape
// panic. Its bytes are escaped in the label; a name that escapes into another consumer's is left out of the
// scrape and counted; names with control characters are labels like any other.
func TestBacklogScrapeSurvivesStoredConsumerNames(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		reg := prometheus.NewRegistry()
		if err := metrics.RegisterBacklog(reg, db, db.Dialect, ""); err != nil {
			t.Fatal(err)
		}
		consumers := [][]byte{[]byte("bell\a and escape \x1b[2J")}
		if db.Dialect.Name() == "mysql" {
			consumers = append(consumers, []byte("bad\xff\xfe"), []byte(`a\xff`), []byte("a\xff"))
		}
		for i, c := range consumers {
			q := db.Rebind("INSERT INTO txbox_inbox (consumer, msg_key, fingerprint, received_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP)")
			if _, err := db.ExecContext(ctx, q, c, fmt.Sprint("k", i), make([]byte, 32)); err != nil {
				t.Fatal(err)
			}
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		if len(mfs) == 0 {
			t.Fatal("scrape returned nothing")
		}
		if v, ok := value(t, reg, "txbox_inbox_keys", map[string]string{"consumer": "bell\a and escape \x1b[2J"}); !ok || v != 1 {
			t.Errorf("consumer with control characters: %v (found %v)", v, ok)
		}
		dropped, _ := value(t, reg, "txbox_metrics_dropped_series_total", nil)
		if db.Dialect.Name() != "mysql" {
			if dropped != 0 {
				t.Errorf("dropped %v series, want 0", dropped)
			}
			return
		}
		if v, ok := value(t, reg, "txbox_inbox_keys", map[string]string{"consumer": `bad\xff\xfe`}); !ok || v != 1 {
			t.Errorf("consumer that is not UTF-8: %v (found %v), want it escaped", v, ok)
		}
		if v, ok := value(t, reg, "txbox_inbox_keys", map[string]string{"consumer": `a\xff`}); !ok || v != 1 {
			t.Errorf(`consumer a\xff: %v (found %v)`, v, ok)
		}
		if dropped < 2 {
			t.Errorf("dropped %v series, want the colliding consumer's two", dropped)
		}
	})
}
