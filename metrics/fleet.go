package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/fleet"
)

// Fleet exposes a relay fleet (package relay/fleet) per database: whether each database is up and held by this
// relay, how many relays it counts, the backlog of the databases it holds, and each database's relay counters.
// Use ObserveBatch as fleet.Config.OnBatch.
//
// Every series carries the label database (the fleet's name for it). The backlog gauges are those of
// RegisterBacklog, read at each scrape from the databases this relay holds only (each database's backlog is
// reported by the relay that drains it); a database whose tables cannot be read is left out of that scrape and
// counted in txbox_fleet_scrape_errors_total, so that one database down never fails a scrape. Do not call
// RegisterBacklog or NewRelay on the same registry: their series have no database label.
type Fleet struct {
	reg prometheus.Registerer
	fl  *fleet.Fleet

	up, held, relays         *prometheus.Desc
	scrapeErrors, unobserved *prometheus.CounterVec

	mu       sync.Mutex
	counters map[string]*Relay   // database → its relay counters
	backlogs map[string]*backlog // database → its backlog reader (replaced when its pool or tables change)
	sources  map[string]fleet.Database
}

// NewFleet creates the fleet's metrics for fl and registers them with reg.
func NewFleet(reg prometheus.Registerer, fl *fleet.Fleet) (*Fleet, error) {
	m := &Fleet{
		reg: reg, fl: fl,
		up: prometheus.NewDesc("txbox_fleet_database_up",
			"1 unless the database could not be reached or used at this relay's last look (see txbox status for the error).",
			[]string{"database"}, nil),
		held: prometheus.NewDesc("txbox_fleet_database_held",
			"1 while this relay holds the database's drain lease and drains it.", []string{"database"}, nil),
		relays: prometheus.NewDesc("txbox_fleet_relays", "Live relays of the fleet this relay counts, itself included.", nil, nil),
		scrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "txbox_fleet_scrape_errors_total",
			Help: "Scrapes that left out a held database's backlog gauges because its tables could not be read.",
		}, []string{"database"}),
		unobserved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "txbox_fleet_unobserved_batches_total",
			Help: "Relay batches not counted because the database's relay metrics could not be registered.",
		}, []string{"database"}),
		counters: map[string]*Relay{},
		backlogs: map[string]*backlog{},
		sources:  map[string]fleet.Database{},
	}
	if err := registerAll(reg, fleetCollector{m}, m.scrapeErrors, m.unobserved); err != nil {
		return nil, err
	}
	return m, nil
}

// Relay returns the relay counters of database (txbox_relay_*{database="..."}), created and registered at its
// first use.
func (m *Fleet) Relay(database string) (*Relay, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.counters[database]; r != nil {
		return r, nil
	}
	r, err := NewRelay(prometheus.WrapRegistererWith(prometheus.Labels{"database": database}, m.reg))
	if err != nil {
		return nil, err
	}
	m.counters[database] = r
	return r, nil
}

// ObserveBatch records one batch of database's relay; it has the signature of fleet.Config.OnBatch. A batch
// whose database's counters cannot be registered (Relay's error) is counted in
// txbox_fleet_unobserved_batches_total instead.
func (m *Fleet) ObserveBatch(database string, b relay.BatchInfo) {
	r, err := m.Relay(database)
	if err != nil {
		m.unobserved.WithLabelValues(database).Inc()
		return
	}
	r.ObserveBatch(b)
}

// fleetCollector reads the fleet's state at each scrape. Its series change with the set of databases, so it
// describes none (an unchecked collector).
type fleetCollector struct{ m *Fleet }

func (fleetCollector) Describe(chan<- *prometheus.Desc) {}

func (c fleetCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	st := m.fl.Status()
	ch <- prometheus.MustNewConstMetric(m.relays, prometheus.GaugeValue, float64(st.Relays))
	var held []*backlog
	var heldNames []string
	for _, d := range st.Databases {
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, flag(d.State != fleet.StateDown), d.Name)
		ch <- prometheus.MustNewConstMetric(m.held, prometheus.GaugeValue, flag(d.State == fleet.StateHeld), d.Name)
		if d.State == fleet.StateHeld {
			if b := m.backlog(d.Name); b != nil {
				held = append(held, b)
				heldNames = append(heldNames, d.Name)
			}
		}
	}
	var wg sync.WaitGroup
	for i, b := range held {
		wg.Go(func() {
			if err := b.collect(ch); err != nil {
				m.scrapeErrors.WithLabelValues(heldNames[i]).Inc()
			}
		})
	}
	wg.Wait()
}

// backlog returns the backlog reader of the database of the fleet's current set named name, or nil when the set
// no longer names it.
func (m *Fleet) backlog(name string) *backlog {
	var d fleet.Database
	found := false
	for _, x := range m.fl.Databases() {
		if x.Name == name {
			d, found = x, true
			break
		}
	}
	if !found {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.backlogs[name]; b != nil && sameSource(m.sources[name], d) {
		return b
	}
	t, err := dialect.TablesFor(d.Prefix)
	if err != nil {
		return nil // the fleet refused it already
	}
	s, err := store.New(d.Dialect, t)
	if err != nil {
		return nil
	}
	b := &backlog{db: d.DB, s: s, descs: newBacklogDescs(prometheus.Labels{"prefix": t.Prefix, "database": name})}
	m.backlogs[name], m.sources[name] = b, d
	return b
}

func sameSource(a, b fleet.Database) bool {
	return a.DB == b.DB && a.Dialect == b.Dialect && a.Prefix == b.Prefix
}

func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
