package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/internal/faults"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/metrics"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/fleet"
	"github.com/txbox/txbox/relay/memory"
)

// A fleet's metrics carry the database: up and held per database, the relays counted, the backlog of the
// databases held and each database's relay counters. A database that is down shows as such, and one whose
// tables cannot be read leaves its backlog out of the scrape without failing it.
func TestFleetMetrics(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		pub := memory.New()
		reg := prometheus.NewRegistry()
		var m *metrics.Fleet
		f, err := fleet.New(fleet.Config{
			Relay:             relay.Config{Publisher: pub, MaxPollInterval: 50 * time.Millisecond},
			HeartbeatInterval: 50 * time.Millisecond, ProbeInterval: 50 * time.Millisecond, Timeout: time.Second,
			OnBatch: func(database string, b relay.BatchInfo) { m.ObserveBatch(database, b) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if m, err = metrics.NewFleet(reg, f); err != nil {
			t.Fatal(err)
		}
		// Nothing listens on port 1: "gone" is down.
		_, dsn, err := faults.Reroute(db.Dialect.Name(), db.DSN, "127.0.0.1:1")
		if err != nil {
			t.Fatal(err)
		}
		gone, err := sqlx.Open(db.Target.Driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer gone.Close()
		set := []fleet.Database{{Name: "a", Dialect: db.Dialect, DB: db.DB}, {Name: "gone", Dialect: db.Dialect, DB: gone}}
		if err := f.Update(context.Background(), set); err != nil {
			t.Fatal(err)
		}
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Hour)
		if err := ob.Enqueue(context.Background(), db, outbox.Message{Topic: "t", Key: "later-1", DeliverAt: later},
			outbox.Message{Topic: "t", Key: "later-2", DeliverAt: later}); err != nil {
			t.Fatal(err)
		}
		enqueue(t, db, 5, "now")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- f.Run(ctx) }()
		defer func() { cancel(); <-done }()

		a, g := map[string]string{"database": "a"}, map[string]string{"database": "gone"}
		deadline := time.Now().Add(time.Minute)
		for {
			held, _ := value(t, reg, "txbox_fleet_database_held", a)
			up, _ := value(t, reg, "txbox_fleet_database_up", g)
			published, _ := value(t, reg, "txbox_relay_published_total", a)
			if held == 1 && published == 5 {
				if _, ok := value(t, reg, "txbox_fleet_database_up", g); ok && up == 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("held a = %v, up gone = %v, published a = %v; want 1, 0, 5 (%+v)", held, up, published, f.Status())
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		for _, c := range []struct {
			name   string
			labels map[string]string
			want   float64
		}{
			{"txbox_fleet_database_up", a, 1},
			{"txbox_outbox_pending", map[string]string{"database": "a", "prefix": "txbox"}, 2},
			{"txbox_outbox_due", a, 0},
			{"txbox_relay_published_total", a, 5},
		} {
			if v, ok := value(t, reg, c.name, c.labels); !ok || v != c.want {
				t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, v, ok, c.want)
			}
		}
		if v, _ := value(t, reg, "txbox_fleet_database_held", g); v != 0 {
			t.Errorf("txbox_fleet_database_held{database=gone} = %v, want 0", v)
		}
		if _, ok := value(t, reg, "txbox_outbox_pending", g); ok {
			t.Error("backlog gauges of a database this relay does not hold")
		}
		if v, _ := value(t, reg, "txbox_fleet_relays", nil); v != 1 {
			t.Errorf("txbox_fleet_relays = %v, want 1", v)
		}

		// The held database's inbox tables go missing: its backlog is left out, the scrape still succeeds.
		if _, err := db.ExecContext(context.Background(), "DROP TABLE txbox_inbox_dead"); err != nil {
			t.Fatal(err)
		}
		if _, ok := value(t, reg, "txbox_outbox_pending", a); ok { // value fails the test if Gather fails
			t.Error("backlog gauges of a database whose tables cannot be read")
		}
		if v, _ := value(t, reg, "txbox_fleet_scrape_errors_total", a); v < 1 {
			t.Errorf("txbox_fleet_scrape_errors_total{database=a} = %v, want at least 1", v)
		}
	})
}
