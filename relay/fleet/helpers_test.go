package fleet_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/fleet"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Fast settings for tests: looks and heartbeats every 100ms.
const (
	probe     = 100 * time.Millisecond
	heartbeat = 100 * time.Millisecond
)

// targets are the testdb targets the fleets' databases are spread over.
func target(i int) testdb.Target { return testdb.Targets[i%len(testdb.Targets)] }

// openDBs opens n fresh migrated databases, spread over MariaDB, PostgreSQL/lib/pq and PostgreSQL/pgx.
func openDBs(t *testing.T, n int) []*testdb.DB {
	t.Helper()
	dbs := make([]*testdb.DB, n)
	for i := range dbs {
		dbs[i] = testdb.Open(t, target(i))
	}
	return dbs
}

// pool opens a pool of its own on db, as a relay process would; it is closed when the test ends.
func pool(t *testing.T, db *testdb.DB) *sqlx.DB {
	t.Helper()
	p, err := sqlx.Open(db.Target.Driver, db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// counted is a pool on db whose connector counts the connections it opens.
func counted(t *testing.T, db *testdb.DB) (*sqlx.DB, *atomic.Int64) {
	t.Helper()
	p := pool(t, db) // for its driver
	var n atomic.Int64
	dc, ok := p.Driver().(driver.DriverContext)
	if !ok {
		t.Fatalf("driver %s opens no connectors", db.Target.Driver)
	}
	c, err := dc.OpenConnector(db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	cp := sqlx.NewDb(sql.OpenDB(countingConnector{c, &n}), db.Target.Driver)
	t.Cleanup(func() { _ = cp.Close() })
	return cp, &n
}

type countingConnector struct {
	driver.Connector
	n *atomic.Int64
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	c.n.Add(1)
	return c.Connector.Connect(ctx)
}

// databases names the pools: db0, db1, ...
func databases(pools []*sqlx.DB, dbs []*testdb.DB) []fleet.Database {
	out := make([]fleet.Database, len(pools))
	for i, p := range pools {
		out[i] = fleet.Database{Name: fmt.Sprintf("db%d", i), Dialect: dbs[i].Dialect, DB: p}
	}
	return out
}

// watcher is a Publisher shared by the fleets of a test: it keeps what each published and fails the test when
// two relays publish rows of one database at once. Keys are "<database>/<n>".
type watcher struct {
	t        *testing.T
	mu       sync.Mutex
	inflight map[string]map[string]int // database → relay → Publish calls in flight
	got      map[string]int            // key → publishes
	changed  chan struct{}
}

func newWatcher(t *testing.T) *watcher {
	return &watcher{t: t, inflight: map[string]map[string]int{}, got: map[string]int{}, changed: make(chan struct{})}
}

// publisher is the Publisher of the relay named id.
func (w *watcher) publisher(id string) relay.Publisher {
	return relay.PublisherFunc(func(ctx context.Context, r outbox.Record) error {
		db, _, _ := strings.Cut(r.Key, "/")
		w.mu.Lock()
		if w.inflight[db] == nil {
			w.inflight[db] = map[string]int{}
		}
		for other, n := range w.inflight[db] {
			if other != id && n > 0 {
				w.t.Errorf("relays %s and %s publish rows of %s at once", id, other, db)
			}
		}
		w.inflight[db][id]++
		w.mu.Unlock()
		time.Sleep(time.Millisecond) // a broker's round trip: publishes of two relays at once would overlap
		defer func() {
			w.mu.Lock()
			w.inflight[db][id]--
			w.got[r.Key]++
			close(w.changed)
			w.changed = make(chan struct{})
			w.mu.Unlock()
		}()
		return ctx.Err()
	})
}

// published returns how often each key was published.
func (w *watcher) published() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.got))
	for k, v := range w.got {
		out[k] = v
	}
	return out
}

// waitKeys waits until every key in keys has been published, failing the test after a minute.
func (w *watcher) waitKeys(t *testing.T, keys []string, what string, status func() string) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		w.mu.Lock()
		missing := 0
		for _, k := range keys {
			if w.got[k] == 0 {
				missing++
			}
		}
		ch := w.changed
		w.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: %d of %d keys not published within a minute\n%s", what, missing, len(keys), status())
		}
	}
}

// enqueue commits n messages into db, keyed "<name>/<tag>-<i>", every third with a sharding key; it returns the
// keys.
func enqueue(t *testing.T, db *testdb.DB, name, tag string, n int) []string {
	t.Helper()
	ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]outbox.Message, n)
	keys := make([]string, n)
	for i := range msgs {
		keys[i] = fmt.Sprintf("%s/%s-%d", name, tag, i)
		msgs[i] = outbox.Message{Topic: "t", Key: keys[i], Payload: []byte("p")}
		if i%3 == 0 {
			msgs[i].ShardingKey = fmt.Sprintf("s%d", i%7)
		}
	}
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, tx, msgs...); err != nil {
		_ = tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// newFleet makes a fleet with fast settings; edit changes them.
func newFleet(t *testing.T, id string, pub relay.Publisher, edit func(*fleet.Config)) *fleet.Fleet {
	t.Helper()
	cfg := fleet.Config{
		ID: id,
		Relay: relay.Config{Publisher: pub, BatchSize: 50, MinPollInterval: time.Millisecond,
			MaxPollInterval: 50 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		HeartbeatInterval: heartbeat,
		ProbeInterval:     probe,
		MaxRetryInterval:  4 * probe,
	}
	if edit != nil {
		edit(&cfg)
	}
	f, err := fleet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// running is a Fleet's Run in the background.
type running struct {
	stop context.CancelFunc
	done chan error
	once sync.Once
}

// run starts f.Run; it is stopped when the test ends (if not before, with stopNow).
func run(t *testing.T, f *fleet.Fleet) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- f.Run(ctx) }()
	t.Cleanup(func() { r.stopNow(t) })
	return r
}

// stopNow ends Run and waits for it to return nil.
func (r *running) stopNow(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.stop()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("Run did not return within a minute of its ctx ending")
		}
	})
}

// until polls cond every few milliseconds and fails the test with describe() after timeout.
func until(t *testing.T, timeout time.Duration, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, describe())
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for work
	}
}

// describe renders the fleets' statuses for failure messages.
func describe(fs ...*fleet.Fleet) func() string {
	return func() string {
		var b strings.Builder
		for _, f := range fs {
			st := f.Status()
			fmt.Fprintf(&b, "%s (relays %d, held %d):", st.ID, st.Relays, st.Held)
			for _, d := range st.Databases {
				fmt.Fprintf(&b, " %s=%s", d.Name, d.State)
				if d.Err != nil {
					fmt.Fprintf(&b, "(%v)", d.Err)
				}
			}
			b.WriteString("\n")
		}
		return b.String()
	}
}

// holders maps each database to the fleets that say they hold it.
func holders(fs ...*fleet.Fleet) map[string][]string {
	out := map[string][]string{}
	for _, f := range fs {
		for _, d := range f.Status().Databases {
			if d.State == fleet.StateHeld {
				out[d.Name] = append(out[d.Name], f.ID())
			}
		}
	}
	return out
}
