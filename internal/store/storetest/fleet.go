package storetest

import (
	"database/sql"
	"reflect"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// fleetCases are the cases of FleetStore: the drain lease and the relays' heartbeats.
var fleetCases = []struct {
	method string
	cases  []testCase
}{
	{"FleetLock", []testCase{{"Exclusive", testFleetLockExclusive, nil},
		{"ReleasedByUnlock", testFleetLockReleasedByUnlock, nil},
		{"ReleasedByClose", testFleetLockReleasedByClose, nil},
		{"PerInstallation", testFleetLockPerInstallation, nil},
		{"ApartFromPartitionLocks", testFleetLockApartFromPartitions, nil}}},
	{"FleetPrepareLease", []testCase{{"IdleTimeout", testFleetPrepareLease, nil}}},
	{"FleetBeat", []testCase{{"LiveRelays", testFleetBeatLive, nil}, {"Upsert", testFleetBeatUpsert, nil}}},
	{"FleetPurge", []testCase{{"OlderThan", testFleetPurge, nil}}},
	{"FleetForget", []testCase{{"Deletes", testFleetForget, nil}}},
}

func (h *harness) tryLock(t *testing.T, s store.Store, c *sql.Conn) bool {
	t.Helper()
	got, err := s.FleetTryLock(h.ctx, c)
	noErr(t, "FleetTryLock", err)
	return got
}

func (h *harness) holds(t *testing.T, s store.Store, c *sql.Conn) bool {
	t.Helper()
	got, err := s.FleetHolds(h.ctx, c)
	noErr(t, "FleetHolds", err)
	return got
}

func (h *harness) lockFree(t *testing.T, s store.Store) bool {
	t.Helper()
	free, err := s.FleetLockFree(h.ctx, h.db)
	noErr(t, "FleetLockFree", err)
	return free
}

// One session holds the lease; the others neither get it nor hold it, and it is not free.
func testFleetLockExclusive(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	if !h.lockFree(t, h.s) {
		t.Fatal("FleetLockFree = false before anyone took the lease")
	}
	if !h.tryLock(t, h.s, c1) {
		t.Fatal("first FleetTryLock = false, want true")
	}
	if h.tryLock(t, h.s, c2) {
		t.Fatal("second session got the lease the first one holds")
	}
	if !h.holds(t, h.s, c1) || h.holds(t, h.s, c2) {
		t.Errorf("FleetHolds = %v (holder), %v (other); want true, false", h.holds(t, h.s, c1), h.holds(t, h.s, c2))
	}
	if h.lockFree(t, h.s) {
		t.Error("FleetLockFree = true while a session holds the lease")
	}
}

// FleetUnlock frees the lease for the next session, and does nothing on a session that holds none.
func testFleetLockReleasedByUnlock(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	if !h.tryLock(t, h.s, c1) {
		t.Fatal("FleetTryLock = false on a free lease")
	}
	noErr(t, "FleetUnlock of a session holding none", h.s.FleetUnlock(h.ctx, c2))
	if h.lockFree(t, h.s) || !h.holds(t, h.s, c1) {
		t.Fatal("another session's FleetUnlock released the holder's lease")
	}
	noErr(t, "FleetUnlock", h.s.FleetUnlock(h.ctx, c1))
	if h.holds(t, h.s, c1) || !h.lockFree(t, h.s) {
		t.Fatal("lease still held after FleetUnlock")
	}
	if !h.tryLock(t, h.s, c2) {
		t.Fatal("FleetTryLock = false after the holder unlocked")
	}
}

// The lease ends with the session that holds it.
func testFleetLockReleasedByClose(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	if !h.tryLock(t, h.s, c1) {
		t.Fatal("FleetTryLock = false on a free lease")
	}
	store.DiscardConn(c1)
	poll(t, "the lease of a closed session to be free", func() bool { return h.tryLock(t, h.s, c2) })
}

// Each installation has a lease of its own: another prefix in the database, and another database (MySQL) or
// schema (PostgreSQL) on the server.
func testFleetLockPerInstallation(t *testing.T, h *harness) {
	c1 := h.conn(t)
	if !h.tryLock(t, h.s, c1) {
		t.Fatal("FleetTryLock = false on a free lease")
	}
	alt := newStore(t, h.db.Dialect, "alt")
	if !h.lockFree(t, alt) || !h.tryLock(t, alt, h.conn(t)) {
		t.Error("the lease of prefix alt is taken by the holder of the default prefix's")
	}
	other := testdb.Open(t, h.db.Target)
	c, err := other.Conn(h.ctx)
	noErr(t, "conn to the other database", err)
	t.Cleanup(func() { store.DiscardConn(c) })
	if !h.tryLock(t, h.s, c) {
		t.Errorf("the lease of another %s is taken by the holder of this one's", map[bool]string{true: "database", false: "schema"}[h.mysql])
	}
}

// The relay's partition locks and their release (which releases every lock of the session) do not touch the
// lease of another session, nor does holding the lease keep a partition from a relay.
func testFleetLockApartFromPartitions(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	if !h.tryLock(t, h.s, c1) {
		t.Fatal("FleetTryLock = false on a free lease")
	}
	all := make([]int, outbox.Partitions)
	for i := range all {
		all[i] = i
	}
	if got := h.lock(t, h.s, c2, all...); len(got) != len(all) {
		t.Errorf("a relay took %d of %d partitions beside the lease, want all", len(got), len(all))
	}
	noErr(t, "OutboxUnlockPartitions", h.s.OutboxUnlockPartitions(h.ctx, c2))
	if !h.holds(t, h.s, c1) || h.lockFree(t, h.s) {
		t.Error("releasing a relay's partition locks released the lease of another session")
	}
}

// The lease session's idle time is bounded as asked.
func testFleetPrepareLease(t *testing.T, h *harness) {
	c := h.conn(t)
	noErr(t, "FleetPrepareLease", h.s.FleetPrepareLease(h.ctx, c, 1500*time.Millisecond))
	q, want := "SELECT CAST(current_setting('idle_session_timeout') AS TEXT)", "1500ms"
	if h.mysql {
		q, want = "SELECT CAST(@@SESSION.wait_timeout AS CHAR)", "2"
	}
	var got string
	noErr(t, q, c.QueryRowContext(h.ctx, q).Scan(&got))
	if got != want {
		t.Errorf("%s = %q after FleetPrepareLease(1.5s), want %q", q, got, want)
	}
}

func (h *harness) beat(t *testing.T, p store.FleetBeatParams) []store.FleetRelay {
	t.Helper()
	if p.Live == 0 {
		p.Live = time.Minute
	}
	rs, err := h.s.FleetBeat(h.ctx, h.db, &p)
	noErr(t, "FleetBeat", err)
	return rs
}

func relayIDs(rs []store.FleetRelay) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

// A heartbeat returns the relays seen within Live, itself included, in id order and byte for byte; older ones
// are left out but still listed by FleetRelays(0).
func testFleetBeatLive(t *testing.T, h *harness) {
	h.beat(t, store.FleetBeatParams{Relay: "r-2", Held: 1})
	h.beat(t, store.FleetBeatParams{Relay: "R-2", Held: 2})
	h.beat(t, store.FleetBeatParams{Relay: "r-old"})
	h.setAgo(t, h.tables().Relays, "seen_at", time.Hour, "relay_id = ?", "r-old")
	rs := h.beat(t, store.FleetBeatParams{Relay: "r-1", Holds: true, Held: 3, MaxHeld: 4, Live: 10 * time.Minute})
	if got, want := relayIDs(rs), []string{"R-2", "r-1", "r-2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("live relays = %v, want %v", got, want)
	}
	for _, r := range rs {
		within(t, r.ID+" age", r.Age, -time.Second, 5*time.Second)
	}
	if r := rs[1]; !r.Holds || r.Held != 3 || r.MaxHeld != 4 {
		t.Errorf("r-1 = %+v, want holds, held 3, max_held 4", r)
	}
	all, err := h.s.FleetRelays(h.ctx, h.db, 0)
	noErr(t, "FleetRelays", err)
	if got, want := relayIDs(all), []string{"R-2", "r-1", "r-2", "r-old"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("FleetRelays(0) = %v, want %v", got, want)
	}
	within(t, "r-old age", all[3].Age, 59*time.Minute, 61*time.Minute)
}

// A relay's next heartbeat replaces its row.
func testFleetBeatUpsert(t *testing.T, h *harness) {
	h.beat(t, store.FleetBeatParams{Relay: "r", Holds: true, Held: 5, MaxHeld: 6})
	h.setAgo(t, h.tables().Relays, "seen_at", time.Hour, "relay_id = ?", "r")
	rs := h.beat(t, store.FleetBeatParams{Relay: "r", Held: 1})
	if len(rs) != 1 || rs[0].Holds || rs[0].Held != 1 || rs[0].MaxHeld != 0 || rs[0].Age > 5*time.Second {
		t.Fatalf("after the second heartbeat: %+v, want one fresh row: not holding, held 1, no cap", rs)
	}
	if n := h.count(t, h.tables().Relays, ""); n != 1 {
		t.Errorf("%d rows, want 1", n)
	}
}

func testFleetPurge(t *testing.T, h *harness) {
	for _, id := range []string{"a", "b", "c"} {
		h.beat(t, store.FleetBeatParams{Relay: id})
	}
	h.setAgo(t, h.tables().Relays, "seen_at", 2*time.Hour, "relay_id = ?", "a")
	h.setAgo(t, h.tables().Relays, "seen_at", 30*time.Minute, "relay_id = ?", "b")
	n, err := h.s.FleetPurge(h.ctx, h.db, time.Hour)
	noErr(t, "FleetPurge", err)
	rs, err := h.s.FleetRelays(h.ctx, h.db, 0)
	noErr(t, "FleetRelays", err)
	if got := relayIDs(rs); n != 1 || !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Errorf("FleetPurge(1h) = %d, left %v; want 1, [b c]", n, got)
	}
}

func testFleetForget(t *testing.T, h *harness) {
	h.beat(t, store.FleetBeatParams{Relay: "a"})
	h.beat(t, store.FleetBeatParams{Relay: "b"})
	for i, want := range []bool{true, false} {
		got, err := h.s.FleetForget(h.ctx, h.db, "a")
		noErr(t, "FleetForget", err)
		if got != want {
			t.Errorf("FleetForget #%d = %v, want %v", i+1, got, want)
		}
	}
	rs, err := h.s.FleetRelays(h.ctx, h.db, 0)
	noErr(t, "FleetRelays", err)
	if got := relayIDs(rs); !reflect.DeepEqual(got, []string{"b"}) {
		t.Errorf("left %v, want [b]", got)
	}
}
