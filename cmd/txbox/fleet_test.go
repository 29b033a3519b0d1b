package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/internal/faults"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// fleetDB is one database of a fleet test, named in the databases file with its DSN in an environment variable.
type fleetDB struct {
	name string
	db   *testdb.DB
	dsn  string // what the relays get: db.DSN, or a proxy's
}

func (d *fleetDB) envVar() string { return strings.ToUpper(d.name) + "_DSN" }

// writeDatabases writes the databases file atomically (a relay polling it never reads half a file).
func writeDatabases(t *testing.T, path string, dbs ...*fleetDB) {
	t.Helper()
	var b strings.Builder
	b.WriteString("databases:\n")
	for _, d := range dbs {
		fmt.Fprintf(&b, "  - {name: %s, dialect: %s, dsn: '${%s}'}\n", d.name, d.db.Dialect.Name(), d.envVar())
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// traffic enqueues into a set of databases until stopped: a transaction of 5 messages per database every
// 20ms, keyed "<database>/<round>-<i>", every other one with a sharding key.
type traffic struct {
	mu     sync.Mutex
	to     []*fleetDB
	keys   map[string]string // key → database
	stop   chan struct{}
	done   chan struct{}
	rounds int
}

func startTraffic(t *testing.T, to []*fleetDB, topic string) *traffic {
	tr := &traffic{to: to, keys: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(20 * time.Millisecond) // pacing the producers
		defer tick.Stop()
		for round := 0; ; round++ {
			tr.mu.Lock()
			to := slices.Clone(tr.to)
			tr.mu.Unlock()
			for _, d := range to {
				msgs := make([]outbox.Message, 5)
				for i := range msgs {
					msgs[i] = outbox.Message{Topic: topic, Key: fmt.Sprintf("%s/%d-%d", d.name, round, i), Payload: []byte("p")}
					if i%2 == 0 {
						msgs[i].ShardingKey = fmt.Sprintf("%s-s%d", d.name, round%5)
					}
				}
				ob, err := outbox.New(outbox.Config{Dialect: d.db.Dialect})
				if err == nil {
					err = ob.Enqueue(context.Background(), d.db.DB, msgs...)
				}
				if err != nil {
					t.Errorf("enqueue into %s: %v", d.name, err)
					return
				}
				tr.mu.Lock()
				for _, m := range msgs {
					tr.keys[m.Key] = d.name
				}
				tr.mu.Unlock()
			}
			tr.mu.Lock()
			tr.rounds = round + 1
			tr.mu.Unlock()
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(tr.halt)
	return tr
}

func (tr *traffic) halt() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
}

// enqueued returns the keys committed so far, by database.
func (tr *traffic) enqueued() map[string][]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string][]string{}
	for k, db := range tr.keys {
		out[db] = append(out[db], k)
	}
	return out
}

// tally counts the business keys an independent consumer received.
type tally struct {
	mu   sync.Mutex
	keys map[string]int
}

func collect(t *testing.T, ch <-chan *primitive.MessageExt) *tally {
	tl := &tally{keys: map[string]int{}}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case m := <-ch:
				tl.mu.Lock()
				tl.keys[m.GetProperty("TXBOX_KEY")]++
				tl.mu.Unlock()
			case <-done:
				return
			}
		}
	}()
	return tl
}

func (tl *tally) count(key string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.keys[key]
}

func (tl *tally) snapshot() map[string]int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := make(map[string]int, len(tl.keys))
	for k, v := range tl.keys {
		out[k] = v
	}
	return out
}

var databaseSample = regexp.MustCompile(`(?m)^(txbox_fleet_[a-z_]+)\{database="([^"]+)"\} (\S+)$`)

// fleetGauges returns a relay's per-database fleet gauges: name → database → value (nil when it cannot be
// scraped, e.g. it was killed).
func fleetGauges(p *proc, base string) map[string]map[string]float64 {
	select {
	case <-p.done:
		return nil
	default:
	}
	code, body := get(base + "/metrics")
	if code != 200 {
		return nil
	}
	out := map[string]map[string]float64{}
	for _, m := range databaseSample.FindAllStringSubmatch(body, -1) {
		if out[m[1]] == nil {
			out[m[1]] = map[string]float64{}
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		out[m[1]][m[2]] = v
	}
	return out
}

// relayProc is one relay process of the fleet test.
type relayProc struct {
	id   string
	p    *proc
	base string // its metrics server
}

func (r *relayProc) held() []string {
	var out []string
	for db, v := range fleetGauges(r.p, r.base)["txbox_fleet_database_held"] {
		if v == 1 {
			out = append(out, db)
		}
	}
	slices.Sort(out)
	return out
}

// holders maps each database to the relays that hold it, by their metrics.
func holdersOf(rs ...*relayProc) map[string][]string {
	out := map[string][]string{}
	for _, r := range rs {
		for _, db := range r.held() {
			out[db] = append(out[db], r.id)
		}
	}
	return out
}

// Three relay processes share twelve databases (6 MariaDB, 6 PostgreSQL) under traffic on all of them: each
// database is held by one relay, four each. A thirteenth database is down at start, then goes down again
// mid-run: it stalls only itself, shows in /metrics and in txbox status, and is drained once back. One relay is
// SIGKILLed and its databases are taken over; another stops cleanly mid-run. The last relay takes a database
// added to the file at runtime and stops touching one removed from it. Every committed message reaches the
// broker (counted by an independent consumer); the only duplicates are of databases the killed relay held, at
// most its batches in flight. The takeover and the added database's first message are timed and logged; the
// issue's bounds (10 s, 5 s) are not asserted, since a loaded machine would fail them without a bug (make
// bench-fleet measures them).
func TestRelayFleet(t *testing.T) {
	b := rmqtest.Get(t)
	topic := b.Topic(t, 8)
	var dbs []*fleetDB
	for i := range 12 {
		tg := testdb.Targets[0] // MariaDB; every other one PostgreSQL (the CLI's pgx)
		if i%2 == 1 {
			tg = testdb.Targets[2]
		}
		db := testdb.Open(t, tg)
		dbs = append(dbs, &fleetDB{name: fmt.Sprintf("db%02d", i), db: db, dsn: db.DSN})
	}
	flakyDB := testdb.Open(t, testdb.Targets[2])
	target, _, err := faults.Reroute("postgres", flakyDB.DSN, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faults.NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	_, viaProxy, err := faults.Reroute("postgres", flakyDB.DSN, proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	flaky := &fleetDB{name: "flaky", db: flakyDB, dsn: viaProxy}
	addedDB := testdb.Open(t, testdb.Targets[0])
	added := &fleetDB{name: "added", db: addedDB, dsn: addedDB.DSN}
	proxy.Refuse(true) // down at start

	file := filepath.Join(t.TempDir(), "databases.yaml")
	writeDatabases(t, file, append(slices.Clone(dbs), flaky)...)
	var env []string
	for _, d := range append(slices.Clone(dbs), flaky, added) {
		env = append(env, d.envVar()+"="+d.dsn)
	}
	const batch, workers = 100, 2
	group := rmqtest.Name(t, "P")
	start := func(id string) *relayProc {
		p := startProc(t, env, addrRE, "relay", "--databases", file, "--relay-id", id, "--namesrv", b.Namesrv,
			"--group", group, "--batch", strconv.Itoa(batch), "--workers", strconv.Itoa(workers),
			"--max-poll-interval", "200ms", "--metrics-addr", "127.0.0.1:0")
		return &relayProc{id: id, p: p, base: "http://" + p.metricsAddr(t)}
	}
	relays := []*relayProc{start("r0"), start("r1"), start("r2")}
	logs := func() string {
		var b strings.Builder
		for _, r := range relays {
			fmt.Fprintf(&b, "--- %s holds %v\n%s", r.id, r.held(), lastLines(r.p.log(), 15))
		}
		return b.String()
	}
	tr := startTraffic(t, dbs, topic)
	flakyKeys := []string{}
	for i := range 20 {
		flakyKeys = append(flakyKeys, fmt.Sprintf("flaky/a-%d", i))
		enqueue(t, flaky.db, outbox.Message{Topic: topic, Key: flakyKeys[i], Payload: []byte("f")})
	}

	// Twelve databases, one holder each, four per relay; the thirteenth down, and said so.
	evenly := func(rs []*relayProc, want map[string]int, dbs []*fleetDB) func() (bool, string) {
		return func() (bool, string) {
			hs := holdersOf(rs...)
			per := map[string]int{}
			for _, d := range dbs {
				if len(hs[d.name]) != 1 {
					return false, fmt.Sprintf("%s held by %v\n%s", d.name, hs[d.name], logs())
				}
				per[hs[d.name][0]]++
			}
			for id, n := range want {
				if per[id] != n {
					return false, fmt.Sprintf("holds per relay %v, want %v\n%s", per, want, logs())
				}
			}
			return true, ""
		}
	}
	waitFor(t, time.Minute, evenly(relays, map[string]int{"r0": 4, "r1": 4, "r2": 4}, dbs))
	tl := collect(t, b.Collect(t, topic))
	downIn := func(r *relayProc) bool { return fleetGauges(r.p, r.base)["txbox_fleet_database_up"]["flaky"] == 0 }
	waitFor(t, 30*time.Second, func() (bool, string) {
		return downIn(relays[0]) && downIn(relays[1]) && downIn(relays[2]), "flaky not down in every relay's /metrics\n" + logs()
	})
	st := run(t, nil, env, "status", "--databases", file)
	if st.code != 1 || !regexp.MustCompile(`database flaky .*\n  down\s+cannot reach`).MatchString(st.stdout) ||
		!strings.Contains(st.stdout, "held by r") {
		t.Errorf("status --databases with flaky down: exit %d, want 1, flaky down with the error and the others held\n%s%s",
			st.code, st.stdout, st.stderr)
	}

	// Back: drained. Down again mid-run: the others keep flowing.
	proxy.Refuse(false)
	waitKeys(t, tl, flakyKeys, "flaky once back", logs)
	proxy.Refuse(true)
	proxy.CutAll()
	waitFor(t, 30*time.Second, func() (bool, string) {
		return downIn(relays[0]) || downIn(relays[1]) || downIn(relays[2]), "flaky not down after the cut\n" + logs()
	})
	if st := run(t, nil, env, "status", "--databases", file); st.code != 1 ||
		!regexp.MustCompile(`database flaky .*\n  down\s+cannot reach`).MatchString(st.stdout) {
		t.Errorf("status --databases with flaky down mid-run: exit %d, want 1 and flaky down with the error\n%s%s",
			st.code, st.stdout, st.stderr)
	}
	more := []string{}
	for i := range 20 {
		more = append(more, fmt.Sprintf("flaky/b-%d", i))
		enqueue(t, flaky.db, outbox.Message{Topic: topic, Key: more[i], Payload: []byte("f")})
	}
	sofar := tr.enqueued()
	var others []string
	for _, d := range dbs {
		others = append(others, sofar[d.name]...)
	}
	waitKeys(t, tl, others, "the other databases while flaky is down", logs)
	for _, k := range more {
		if tl.count(k) > 0 {
			t.Fatalf("%s received while its database was down", k)
		}
	}
	proxy.Refuse(false)
	waitKeys(t, tl, more, "flaky back after the mid-run outage", logs)

	// SIGKILL r1: the others take its databases within 10 s.
	waitFor(t, time.Minute, evenly(relays, nil, dbs))
	killed := relays[1].held()
	killedAt := time.Now()
	if err := relays[1].p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-relays[1].p.done
	survivors := []*relayProc{relays[0], relays[2]}
	// The issue asks for 10 s; the deadline is looser so that a loaded machine does not fail the test on timing:
	// the time is logged (and measured by make bench-fleet).
	waitFor(t, time.Minute, func() (bool, string) {
		hs := holdersOf(survivors...)
		for _, db := range killed {
			if len(hs[db]) != 1 {
				return false, fmt.Sprintf("%s (r1's) held by %v %s after the kill\n%s", db, hs[db], time.Since(killedAt), logs())
			}
		}
		return true, ""
	})
	t.Logf("info: r1 (held %v) SIGKILLed: its databases taken over in %s", killed, time.Since(killedAt).Round(10*time.Millisecond))

	// r2 stops cleanly mid-run: exit 0, r0 takes everything.
	if code := relays[2].p.stop(t); code != 0 {
		t.Fatalf("r2: exit %d after SIGTERM\n%s", code, relays[2].p.log())
	}
	all := append(slices.Clone(dbs), flaky)
	waitFor(t, 30*time.Second, evenly(relays[:1], map[string]int{"r0": len(all)}, all))
	waitFor(t, 30*time.Second, func() (bool, string) {
		_, body := get(relays[0].base + "/metrics")
		return metric(body, "txbox_fleet_relays") == 1, "r0 still counts other relays\n" + logs()
	})

	// The file changes: "added" joins, db11 leaves.
	removed := dbs[11]
	addedKeys := []string{}
	for i := range 20 {
		addedKeys = append(addedKeys, fmt.Sprintf("added/a-%d", i))
		enqueue(t, added.db, outbox.Message{Topic: topic, Key: addedKeys[i], Payload: []byte("x")})
	}
	reloads := strings.Count(relays[0].p.log(), "databases reloaded")
	changedAt := time.Now()
	writeDatabases(t, file, append(slices.Clone(dbs[:11]), flaky, added)...)
	waitFor(t, time.Minute, func() (bool, string) { // the issue asks for 5 s: logged, not asserted (see above)
		return tl.count(addedKeys[0]) > 0 || slices.ContainsFunc(addedKeys, func(k string) bool { return tl.count(k) > 0 }),
			fmt.Sprintf("nothing of the added database received %s after the file changed\n%s", time.Since(changedAt), logs())
	})
	t.Logf("info: database added to the file: first message received %s later", time.Since(changedAt).Round(10*time.Millisecond))
	waitFor(t, 30*time.Second, func() (bool, string) {
		return strings.Count(relays[0].p.log(), "databases reloaded") > reloads, "no reload logged\n" + logs()
	})
	waitKeys(t, tl, addedKeys, "the added database", logs)
	lastBeat := seenAt(t, removed.db, "r0")
	for range 5 { // five heartbeats of r0 elsewhere: ample time for looks at the removed database
		last := seenAt(t, dbs[0].db, "r0")
		waitFor(t, 30*time.Second, func() (bool, string) { return seenAt(t, dbs[0].db, "r0") != last, "no heartbeat\n" + logs() })
	}
	if now := seenAt(t, removed.db, "r0"); now != lastBeat {
		t.Errorf("r0 wrote a heartbeat into the removed database (%s, then %s)", lastBeat, now)
	}
	left := count(t, removed.db, "SELECT COUNT(*) FROM txbox_outbox")

	// The end: every committed message of the databases drained reached the broker; duplicates only of what r1
	// held, within its batches in flight.
	tr.halt()
	final := tr.enqueued()
	var want []string
	for _, d := range append(slices.Clone(dbs[:11]), flaky, added) {
		want = append(want, final[d.name]...)
	}
	waitKeys(t, tl, want, "every committed message", logs)
	if code := relays[0].p.stop(t); code != 0 {
		t.Fatalf("r0: exit %d after SIGTERM\n%s", code, relays[0].p.log())
	}
	got := tl.snapshot()
	dups := 0
	for k, n := range got {
		if n < 2 {
			continue
		}
		db, _, _ := strings.Cut(k, "/")
		if !slices.Contains(killed, db) {
			t.Errorf("%s received %d times, and r1 (killed) did not hold %s", k, n, db)
		}
		dups += n - 1
	}
	if limit := len(killed) * workers * batch; dups > limit {
		t.Errorf("%d duplicates, more than r1's batches in flight (%d databases × %d workers × %d rows)", dups, len(killed), workers, batch)
	}
	// The removed database: what was published before it left, plus what stayed in its outbox, is all of it;
	// nothing enqueued after it left was published.
	inOutbox := count(t, removed.db, "SELECT COUNT(*) FROM txbox_outbox")
	received := 0
	for _, k := range final[removed.name] {
		if got[k] > 0 {
			received++
		}
	}
	if received+inOutbox != len(final[removed.name]) || inOutbox < left {
		t.Errorf("removed database: %d keys, %d received, %d in the outbox (%d at removal)", len(final[removed.name]),
			received, inOutbox, left)
	}
	t.Logf("info: %d messages from %d databases, %d duplicates (r1 held %d databases when killed)", len(want), 13, dups, len(killed))
}

// waitKeys waits until the tally has every key.
func waitKeys(t *testing.T, tl *tally, keys []string, what string, logs func() string) {
	t.Helper()
	waitFor(t, 2*time.Minute, func() (bool, string) {
		missing := []string{}
		for _, k := range keys {
			if tl.count(k) == 0 {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			return true, ""
		}
		return false, fmt.Sprintf("%s: %d of %d keys not received (e.g. %v)\n%s", what, len(missing), len(keys),
			missing[:min(5, len(missing))], logs())
	})
}

// seenAt is relay id's last heartbeat in db, as text.
func seenAt(t *testing.T, db *testdb.DB, id string) string {
	t.Helper()
	var s string
	err := db.QueryRowContext(context.Background(), db.Rebind("SELECT CAST(seen_at AS CHAR(40)) FROM txbox_relays WHERE relay_id = ?"), id).Scan(&s)
	if err != nil {
		return err.Error()
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n") + "\n"
}
