package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/faults"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/fleet"
)

// Relays share databases without a coordinator. One relay alone takes all six (both dialects, all three
// drivers); two more join under traffic, and the first gives databases up until each holds two. Throughout,
// each database is drained by one relay at a time (never two publishing its rows at once), every message is
// published once, and the connections each relay keeps stay within its formula. A relay that stops cleanly
// hands its databases over: the others take them, drain what comes next, once, and count one relay fewer; its
// heartbeats are gone from the databases it held.
func TestFleetSharesAndHandsOver(t *testing.T) {
	t.Parallel()
	dbs := openDBs(t, 6)
	w := newWatcher(t)
	var fs []*fleet.Fleet
	var runs []*running
	var pools [][]*sqlx.DB
	start := func() {
		id := fmt.Sprintf("relay-%d", len(fs))
		f := newFleet(t, id, w.publisher(id), nil)
		ps := make([]*sqlx.DB, len(dbs))
		for j, db := range dbs {
			ps[j] = pool(t, db)
		}
		if err := f.Update(context.Background(), databases(ps, dbs)); err != nil {
			t.Fatal(err)
		}
		fs, pools = append(fs, f), append(pools, ps)
		runs = append(runs, run(t, f))
	}
	batch := func(tag string) []string {
		var keys []string
		for i, db := range dbs {
			keys = append(keys, enqueue(t, db, fmt.Sprintf("db%d", i), tag, 100)...)
		}
		return keys
	}
	balanced := func(fs []*fleet.Fleet, each ...int) func() bool {
		return func() bool {
			hs := holders(fs...)
			if len(hs) != len(dbs) {
				return false
			}
			for _, h := range hs {
				if len(h) != 1 {
					return false
				}
			}
			for i, f := range fs {
				if st := f.Status(); st.Held != each[i] || st.Relays != len(fs) {
					return false
				}
			}
			return true
		}
	}

	start()
	w.waitKeys(t, batch("a"), "one relay alone", describe(fs...))
	until(t, 30*time.Second, balanced(fs, 6), describe(fs...))

	// Two more join while messages keep coming.
	start()
	start()
	var keys []string
	for i := range 5 {
		keys = append(keys, batch(fmt.Sprintf("b%d", i))...)
	}
	w.waitKeys(t, keys, "while relays join", describe(fs...))
	until(t, 30*time.Second, balanced(fs, 2, 2, 2), describe(fs...))
	w.waitKeys(t, batch("c"), "three relays", describe(fs...))
	for i, f := range fs {
		// Per database held: the relay's workers, the PostgreSQL listener, the lease, one spare; plus the looks.
		open := 0
		for _, p := range pools[i] {
			open += p.Stats().OpenConnections
		}
		if limit := 2*(relay.DefaultWorkers+3) + fleet.DefaultProbes; open > limit {
			t.Errorf("%s holds 2 databases with %d connections open, more than %d", f.ID(), open, limit)
		}
	}

	// relay-0 stops cleanly: the others take its databases and drain the next messages once.
	var held0 []int
	for j, d := range fs[0].Status().Databases {
		if d.State == fleet.StateHeld {
			held0 = append(held0, j)
		}
	}
	runs[0].stopNow(t)
	for _, j := range held0 {
		if n := count(t, dbs[j], "SELECT COUNT(*) FROM txbox_relays WHERE relay_id = 'relay-0'"); n != 0 {
			t.Errorf("db%d still has relay-0's heartbeat after it stopped cleanly", j)
		}
	}
	w.waitKeys(t, batch("d"), "after relay-0 stopped", describe(fs[1:]...))
	until(t, 30*time.Second, balanced(fs[1:], 3, 3), describe(fs[1:]...))
	for k, n := range w.published() {
		if n != 1 {
			t.Errorf("%s published %d times, want once (no relay died)", k, n)
		}
	}
}

// A database added while the fleet runs is drained at once; one removed is given up: Update returns once its
// relay and lease are gone, and the fleet never connects to it again.
func TestFleetAddAndRemove(t *testing.T) {
	t.Parallel()
	// The removed one on pgx, whose driver opens connectors (countable); lib/pq's does not.
	dbs := []*testdb.DB{testdb.Open(t, target(0)), testdb.Open(t, target(2)), testdb.Open(t, target(1))}
	w := newWatcher(t)
	f := newFleet(t, "solo", w.publisher("solo"), nil)
	p0 := pool(t, dbs[0])
	p1, connects := counted(t, dbs[1])
	p2 := pool(t, dbs[2])
	set := []fleet.Database{{Name: "db0", Dialect: dbs[0].Dialect, DB: p0}, {Name: "db1", Dialect: dbs[1].Dialect, DB: p1}}
	if err := f.Update(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	run(t, f)
	w.waitKeys(t, append(enqueue(t, dbs[0], "db0", "a", 50), enqueue(t, dbs[1], "db1", "a", 50)...), "first", describe(f))

	keys := enqueue(t, dbs[2], "db2", "a", 50)
	set = []fleet.Database{set[0], {Name: "db2", Dialect: dbs[2].Dialect, DB: p2}}
	if err := f.Update(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	before := connects.Load()
	if open := p1.Stats().OpenConnections; open != 0 {
		t.Errorf("Update returned with %d connections open to the removed database", open)
	}
	w.waitKeys(t, keys, "the added database", describe(f))
	if names := statusNames(f); !slices.Equal(names, []string{"db0", "db2"}) {
		t.Errorf("Status lists %v, want [db0 db2]", names)
	}
	left := enqueue(t, dbs[1], "db1", "b", 10)
	// Five heartbeats later on db2 (each a row rewritten), the removed database has had time for many looks.
	for range 5 {
		last := seenAt(t, dbs[2], "solo")
		until(t, 30*time.Second, func() bool { return seenAt(t, dbs[2], "solo") != last }, describe(f))
	}
	if n := connects.Load(); n != before {
		t.Errorf("the fleet connected %d times to a database Update had removed", n-before)
	}
	for k := range w.published() {
		if slices.Contains(left, k) {
			t.Errorf("%s of the removed database was published", k)
		}
	}
	if n := count(t, dbs[1], "SELECT COUNT(*) FROM txbox_outbox"); n != len(left) {
		t.Errorf("the removed database's outbox has %d rows, want %d untouched", n, len(left))
	}
}

func statusNames(f *fleet.Fleet) []string {
	var out []string
	for _, d := range f.Status().Databases {
		out = append(out, d.Name)
	}
	return out
}

// A database that is down at start, and again mid-run, stalls only itself: the fleet drains the others, shows
// it down with the error (and tells OnChange), looks at it again and drains it once it is back.
func TestFleetDatabaseDown(t *testing.T) {
	t.Parallel()
	for _, tg := range testdb.Targets {
		t.Run(tg.Name, func(t *testing.T) {
			t.Parallel()
			down, up := testdb.Open(t, tg), testdb.Open(t, target(1))
			proxy, via, err := faults.Proxied(tg.Dialect.Name(), tg.Driver, down.DSN)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = via.Close(); _ = proxy.Close() })
			proxy.Refuse(true)

			w := newWatcher(t)
			var mu sync.Mutex
			var changes []fleet.DatabaseStatus
			f := newFleet(t, "r", w.publisher("r"), func(c *fleet.Config) {
				c.Timeout = 2 * time.Second
				c.OnChange = func(d fleet.DatabaseStatus) {
					mu.Lock()
					changes = append(changes, d)
					mu.Unlock()
				}
			})
			set := []fleet.Database{{Name: "down", Dialect: tg.Dialect, DB: via}, {Name: "up", Dialect: up.Dialect, DB: pool(t, up)}}
			if err := f.Update(context.Background(), set); err != nil {
				t.Fatal(err)
			}
			state := func(name string) fleet.DatabaseStatus {
				for _, d := range f.Status().Databases {
					if d.Name == name {
						return d
					}
				}
				return fleet.DatabaseStatus{}
			}
			run(t, f)
			stuck := enqueue(t, down, "down", "a", 30)
			w.waitKeys(t, enqueue(t, up, "up", "a", 30), "the database that is up, beside one down at start", describe(f))
			until(t, 30*time.Second, func() bool { return state("down").State == fleet.StateDown && state("down").Err != nil }, describe(f))

			proxy.Refuse(false)
			w.waitKeys(t, stuck, "the database once it is back", describe(f))

			// Down mid-run: every connection cut, new ones refused.
			proxy.Refuse(true)
			proxy.CutAll()
			until(t, 30*time.Second, func() bool { return state("down").State == fleet.StateDown }, describe(f))
			stuck = enqueue(t, down, "down", "b", 30)
			w.waitKeys(t, enqueue(t, up, "up", "b", 30), "the database that is up, beside one down mid-run", describe(f))
			for _, k := range stuck {
				if w.published()[k] > 0 {
					t.Fatalf("%s published while its database was down", k)
				}
			}
			proxy.Refuse(false)
			w.waitKeys(t, stuck, "the database back after an outage mid-run", describe(f))
			until(t, 30*time.Second, func() bool { return state("down").State == fleet.StateHeld && state("down").Err == nil }, describe(f))

			mu.Lock()
			defer mu.Unlock()
			downs := 0
			for _, c := range changes {
				if c.Name == "down" && c.State == fleet.StateDown {
					downs++
					if c.Err == nil {
						t.Errorf("OnChange reported down without an error: %+v", c)
					}
				}
			}
			if downs < 2 {
				t.Errorf("OnChange reported the database down %d times, want at least 2 (at start, mid-run)", downs)
			}
		})
	}
}

// A relay never holds more than MaxHeld, even when the others stay free far past the takeover grace; what it
// leaves is free, and shown so.
func TestFleetMaxHeld(t *testing.T) {
	t.Parallel()
	dbs := openDBs(t, 3)
	w := newWatcher(t)
	var mu sync.Mutex
	held, most := map[string]bool{}, 0
	f := newFleet(t, "capped", w.publisher("capped"), func(c *fleet.Config) {
		c.MaxHeld = 1
		c.OnChange = func(d fleet.DatabaseStatus) {
			mu.Lock()
			defer mu.Unlock()
			held[d.Name] = d.State == fleet.StateHeld
			n := 0
			for _, h := range held {
				if h {
					n++
				}
			}
			most = max(most, n)
		}
	})
	ps := make([]*sqlx.DB, len(dbs))
	for i, db := range dbs {
		ps[i] = pool(t, db)
	}
	if err := f.Update(context.Background(), databases(ps, dbs)); err != nil {
		t.Fatal(err)
	}
	run(t, f)
	var freeDB *testdb.DB
	until(t, 30*time.Second, func() bool {
		st := f.Status()
		free := 0
		for i, d := range st.Databases {
			if d.State == fleet.StateFree {
				free++
				freeDB = dbs[i]
			}
		}
		return st.Held == 1 && free == 2
	}, describe(f))
	// Ten looks at a free database later (each rewrites the relay's heartbeat there), far past the grace.
	for range 10 {
		last := seenAt(t, freeDB, "capped")
		until(t, 30*time.Second, func() bool { return seenAt(t, freeDB, "capped") != last }, describe(f))
	}
	mu.Lock()
	defer mu.Unlock()
	if most != 1 {
		t.Errorf("held up to %d databases at once with MaxHeld 1", most)
	}
}

// seenAt is the time of relay id's last heartbeat in db, as text.
func seenAt(t *testing.T, db *testdb.DB, id string) string {
	t.Helper()
	var s string
	err := db.QueryRowContext(context.Background(), db.Rebind("SELECT CAST(seen_at AS CHAR(40)) FROM txbox_relays WHERE relay_id = ?"), id).Scan(&s)
	if err != nil {
		return err.Error()
	}
	return s
}

func TestNewValidatesConfig(t *testing.T) {
	pub := relay.PublisherFunc(nil)
	for _, c := range []struct {
		cfg  fleet.Config
		want string
	}{
		{fleet.Config{}, "Relay.Publisher is required"},
		{fleet.Config{Relay: relay.Config{Publisher: pub, Dialect: dialect.MySQL}}, "Relay.Dialect must be empty"},
		{fleet.Config{Relay: relay.Config{Publisher: pub, Prefix: "x"}}, "Relay.Prefix must be empty"},
		{fleet.Config{Relay: relay.Config{Publisher: pub, BatchSize: 20000}}, "BatchSize"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, MaxHeld: -1}, "MaxHeld"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, ID: strings.Repeat("x", 65)}, "ID must be 1 to 64 bytes"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, Probes: 17}, "Probes"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, HeartbeatInterval: time.Millisecond}, "HeartbeatInterval"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, HeartbeatInterval: time.Minute}, "HeartbeatInterval must be at most"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, ProbeInterval: -time.Second}, "ProbeInterval"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, Timeout: time.Millisecond}, "Timeout"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, RelayTTL: 2 * time.Second}, "RelayTTL"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, TakeoverGrace: time.Millisecond}, "TakeoverGrace"},
		{fleet.Config{Relay: relay.Config{Publisher: pub}, MaxRetryInterval: time.Millisecond}, "MaxRetryInterval"},
	} {
		_, err := fleet.New(c.cfg)
		if !errors.Is(err, fleet.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	f, err := fleet.New(fleet.Config{Relay: relay.Config{Publisher: pub}})
	if err != nil {
		t.Fatal(err)
	}
	if id := f.ID(); id == "" || len(id) > 64 {
		t.Errorf("default ID %q", id)
	}
}

func TestUpdateValidatesDatabases(t *testing.T) {
	f, err := fleet.New(fleet.Config{Relay: relay.Config{Publisher: relay.PublisherFunc(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	db := &sqlx.DB{}
	ok := fleet.Database{Name: "a", Dialect: dialect.MySQL, DB: db}
	if err := f.Update(context.Background(), []fleet.Database{ok}); err != nil {
		t.Fatalf("Update(valid) = %v", err)
	}
	for _, c := range []struct {
		set  []fleet.Database
		want string
	}{
		{[]fleet.Database{{Name: "", Dialect: dialect.MySQL, DB: db}}, "Name"},
		{[]fleet.Database{{Name: "a b", Dialect: dialect.MySQL, DB: db}}, "Name"},
		{[]fleet.Database{ok, ok}, "used twice"},
		{[]fleet.Database{{Name: "b", DB: db}}, "Dialect is required"},
		{[]fleet.Database{{Name: "b", Dialect: dialect.MySQL}}, "DB is required"},
		{[]fleet.Database{{Name: "b", Dialect: dialect.MySQL, DB: db, Prefix: "Bad-Prefix"}}, "Prefix"},
	} {
		err := f.Update(context.Background(), c.set)
		if !errors.Is(err, fleet.ErrInvalidDatabase) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Update(%+v) = %v, want %q", c.set, err, c.want)
		}
	}
	if names := statusNames(f); len(names) != 0 {
		t.Errorf("Status before Run lists %v", names)
	}
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	db := testdb.Open(t, target(0))
	f := newFleet(t, "twice", relay.PublisherFunc(nil), nil)
	if err := f.Update(context.Background(), []fleet.Database{{Name: "db", Dialect: db.Dialect, DB: pool(t, db)}}); err != nil {
		t.Fatal(err)
	}
	run(t, f)
	until(t, 30*time.Second, func() bool {
		st := f.Status()
		return len(st.Databases) == 1 && st.Databases[0].State != fleet.StatePending
	}, describe(f))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Run(ctx); !errors.Is(err, fleet.ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
}

func count(t *testing.T, db *testdb.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// A lease whose session is killed while the database stays up (an administrator's KILL, a failover of the
// connection): the relay notices at its next heartbeat, stops draining, reports the database down with
// ErrLeaseLost, and takes the lease again.
func TestFleetLeaseLost(t *testing.T) {
	t.Parallel()
	for _, tg := range testdb.Targets {
		t.Run(tg.Name, func(t *testing.T) {
			t.Parallel()
			db := testdb.Open(t, tg)
			w := newWatcher(t)
			var mu sync.Mutex
			var lost error
			f := newFleet(t, "r", w.publisher("r"), func(c *fleet.Config) {
				c.OnChange = func(d fleet.DatabaseStatus) {
					mu.Lock()
					defer mu.Unlock()
					if d.State == fleet.StateDown && lost == nil {
						lost = d.Err
					}
				}
			})
			if err := f.Update(context.Background(), []fleet.Database{{Name: "db", Dialect: tg.Dialect, DB: pool(t, db)}}); err != nil {
				t.Fatal(err)
			}
			run(t, f)
			w.waitKeys(t, enqueue(t, db, "db", "a", 20), "before the kill", describe(f))
			// The session that holds the lease, by its lock.
			q := "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND objid = 4294967295 " +
				"AND classid = hashtext('txbox_fleet:' || current_schema() || ':txbox')::oid"
			kill := "SELECT pg_terminate_backend($1)"
			if tg.Dialect == dialect.MySQL {
				q = "SELECT IS_USED_LOCK(CONCAT('txbox_fleet:', LEFT(MD5(CONCAT(DATABASE(), ':txbox')), 32)))"
				kill = "KILL ?"
			}
			var session int64
			until(t, 30*time.Second, func() bool {
				return db.QueryRowContext(context.Background(), q).Scan(&session) == nil && session > 0
			}, describe(f))
			if _, err := db.ExecContext(context.Background(), kill, session); err != nil {
				t.Fatalf("kill the lease's session %d: %v", session, err)
			}
			until(t, 30*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return lost != nil
			}, describe(f))
			if !errors.Is(lost, fleet.ErrLeaseLost) {
				t.Errorf("down with %v, want ErrLeaseLost", lost)
			}
			w.waitKeys(t, enqueue(t, db, "db", "b", 20), "after the lease came back", describe(f))
			until(t, 30*time.Second, func() bool { return f.Status().Held == 1 }, describe(f))
		})
	}
}
