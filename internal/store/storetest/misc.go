package storetest

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// with returns a harness on the same database for the Store s (another table set).
func (h *harness) with(s store.Store) *harness {
	c := *h
	c.s, c.hw = s, 0
	return &c
}

func (h *harness) stats(t *testing.T) *store.Stats {
	t.Helper()
	st, err := h.s.Stats(h.ctx, h.db)
	noErr(t, "Stats", err)
	return st
}

// --- Stats ---

func testStatsEmpty(t *testing.T, h *harness) {
	if st := h.stats(t); !reflect.DeepEqual(*st, store.Stats{}) {
		t.Errorf("Stats of empty tables = %+v, want zero", *st)
	}
}

func testStatsCounts(t *testing.T, h *harness) {
	row := func(topic, key string) store.OutboxInsertRow {
		r := unkeyed(key)
		r.Topic = topic
		return r
	}
	ids := h.insert(t, row("a", "a0"), row("a", "a1"), delayed(row("a", "a2"), time.Hour), row("b", "b0"),
		row("b", "b1"))
	h.setAgo(t, h.tables().Outbox, "created_at", 10*time.Minute, "id = ?", ids[1])
	h.deleteRows(t, true, ref(ids[4], -1))
	h.bury(t, row("c", "c0"), row("a", "a3"))
	h.record(t, "c1", "k1")
	h.record(t, "c1", "k2")
	h.park(t, "c1", "k3")
	h.record(t, "c2", "k1")
	h.recordFailure(t, h.db, "c3", "k", "x")

	st := h.stats(t)
	within(t, "OldestPendingAge", st.Outbox.OldestPendingAge, 10*time.Minute, 11*time.Minute)
	st.Outbox.OldestPendingAge = 0
	want := store.Stats{
		Outbox: store.OutboxStats{Pending: 4, Due: 3, Dead: 2, Topics: []store.TopicStats{
			{Topic: "a", Pending: 3, Dead: 1}, {Topic: "b", Pending: 1}, {Topic: "c", Dead: 1}}},
		Inbox: store.InboxStats{Keys: 4, Dead: 1, Consumers: []store.ConsumerStats{
			{Consumer: "c1", Keys: 3, Dead: 1}, {Consumer: "c2", Keys: 1}}},
	}
	if !reflect.DeepEqual(*st, want) {
		t.Errorf("Stats = %+v\nwant    %+v", *st, want)
	}
}

// --- EnsureSchema ---

// Without a schema in the prefix EnsureSchema runs no statement at all (the transaction given is over).
func testEnsureSchemaNoSchema(t *testing.T, h *harness) {
	tx := h.begin(t)
	rollback(t, tx)
	noErr(t, "EnsureSchema", h.s.EnsureSchema(h.ctx, tx))
}

// freshSchema names a schema (MySQL: database) that does not exist yet and is dropped at the end of the test.
func (h *harness) freshSchema(t *testing.T) string {
	t.Helper()
	schema := uniqueName("txbox_s_")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q := "DROP SCHEMA IF EXISTS " + schema + " CASCADE"
		if h.mysql {
			q = "DROP DATABASE IF EXISTS " + schema
		}
		if _, err := h.db.ExecContext(ctx, q); err != nil {
			t.Errorf("%s: %v", q, err)
		}
	})
	return schema
}

func (h *harness) schemaExists(t *testing.T, schema string) bool {
	t.Helper()
	q := "SELECT COUNT(*) FROM pg_namespace WHERE nspname = ?"
	if h.mysql {
		q = "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?"
	}
	var n int
	h.scan(t, q, []any{schema}, &n)
	return n > 0
}

func testEnsureSchemaCreates(t *testing.T, h *harness) {
	schema := h.freshSchema(t)
	s := newStore(t, h.db.Dialect, schema+".txbox")
	if h.schemaExists(t, schema) {
		t.Fatalf("schema %s exists before EnsureSchema", schema)
	}
	noErr(t, "EnsureSchema", s.EnsureSchema(h.ctx, h.db))
	if !h.schemaExists(t, schema) {
		t.Fatalf("schema %s missing after EnsureSchema", schema)
	}
	noErr(t, "second EnsureSchema", s.EnsureSchema(h.ctx, h.db))
}

// --- MigrationLock / MigrationUnlock ---

// A second session's lock waits (until its context ends) while the first holds it, and gets it when the first
// unlocks.
func testMigrationLockWaits(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	noErr(t, "MigrationLock", h.s.MigrationLock(h.ctx, c1))
	short, cancel := context.WithTimeout(h.ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.s.MigrationLock(short, c2)
	if err == nil {
		t.Fatal("a second MigrationLock succeeded while the first session held the lock")
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Errorf("second MigrationLock failed after %v without waiting: %v", waited, err)
	}
	store.DiscardConn(c2) // its statement was cancelled

	c3 := h.conn(t)
	id := h.sessionID(t, c3)
	ch := async(func() error { return h.s.MigrationLock(h.ctx, c3) })
	h.waitBlocked(t, id)
	pending(t, "third MigrationLock", ch)
	noErr(t, "MigrationUnlock", h.s.MigrationUnlock(h.ctx, c1))
	noErr(t, "third MigrationLock after the first unlocked", await(t, "third MigrationLock", ch))
	noErr(t, "MigrationUnlock", h.s.MigrationUnlock(h.ctx, c3))
	ctx, cancel2 := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel2()
	noErr(t, "MigrationLock after both unlocked", h.s.MigrationLock(ctx, c1))
	noErr(t, "MigrationUnlock", h.s.MigrationUnlock(h.ctx, c1))
}

// Installations with different prefixes migrate independently.
func testMigrationLockPerPrefix(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	noErr(t, "MigrationLock", h.s.MigrationLock(h.ctx, c1))
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	alt := newStore(t, h.db.Dialect, "alt")
	noErr(t, "MigrationLock of another prefix (must not wait)", alt.MigrationLock(ctx, c2))
	noErr(t, "MigrationUnlock", alt.MigrationUnlock(h.ctx, c2))
	noErr(t, "MigrationUnlock", h.s.MigrationUnlock(h.ctx, c1))
}

// --- two table sets in one database ---

func rowKeys(rows []store.OutboxRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Key)
	}
	return out
}

func sortedKeys(rows []store.OutboxRow) []string {
	k := rowKeys(rows)
	slices.Sort(k)
	return k
}

// The Store of another prefix reads, changes and counts only its own outbox rows, even where ids coincide.
func testTableSetsOutbox(t *testing.T, h *harness) {
	alt := h.with(h.migrated(t, "alt"))
	d := h.insert(t, unkeyed("d-u"), keyed(3, "s", "d-k"))
	a := alt.insert(t, unkeyed("a-u"), keyed(3, "s", "a-k"), keyed(5, "s5", "a-k5"))
	alt.retryRows(t, retry(a[0], -1, time.Hour, "x"), retry(a[1], 3, time.Hour, "x"))
	rows := h.claim(t, 0, 10)
	checkStrings(t, "default claim", rowKeys(rows), []string{"d-u"})
	if len(rows) == 1 && rows[0].Attempts != 0 {
		t.Errorf("default row retried through the other table set: attempts %d", rows[0].Attempts)
	}
	checkStrings(t, "alt claim (its unkeyed row in backoff)", rowKeys(alt.claim(t, 0, 10)), nil)
	checkStrings(t, "default keyed", sortedKeys(h.selectKeyed(t, []int{3, 5}, 10)), []string{"d-k"})
	checkStrings(t, "alt keyed", sortedKeys(alt.selectKeyed(t, []int{3, 5}, 10)), []string{"a-k5"})
	for _, c := range []struct {
		h    *harness
		want []int
	}{{h, []int{3}}, {alt, []int{3, 5}}} {
		got, err := c.h.s.OutboxKeyedPartitions(h.ctx, h.db)
		noErr(t, "OutboxKeyedPartitions", err)
		checkParts(t, c.h.s.Tables().Prefix+" keyed partitions", got, c.want)
	}
	if p, ap := h.stats(t).Outbox.Pending, alt.stats(t).Outbox.Pending; p != 2 || ap != 3 {
		t.Errorf("pending: default %d, alt %d; want 2, 3", p, ap)
	}

	h.deleteRows(t, true, ref(d[0], -1))
	if n := alt.purgePublished(t, -time.Hour, 100); n != 0 {
		t.Errorf("alt purge of published rows = %d, want 0", n)
	}
	checkIDs(t, "default published rows", h.ids(t, h.tables().OutboxPublished, ""), d[:1])
	h.buryRows(t, retry(d[1], 3, 0, "dead"))
	checkIDs(t, "alt dead letters", deadIDs(alt.deadList(t)), nil)
	if n := alt.requeue(t, h.db, d[1]); n != 0 {
		t.Errorf("alt requeue of a default dead letter = %d", n)
	}
	if n, err := alt.s.OutboxDeadDelete(h.ctx, h.db, d[1:]); err != nil || n != 0 {
		t.Errorf("alt delete of a default dead letter = %d, %v", n, err)
	}
	checkIDs(t, "default dead letters", deadIDs(h.deadList(t)), d[1:])
	checkIDs(t, "alt outbox rows", h.ids(t, alt.tables().Outbox, ""), a)
}

// ... and only its own inbox.
func testTableSetsInbox(t *testing.T, h *harness) {
	alt := h.with(h.migrated(t, "alt"))
	h.record(t, "c", "k")
	alt.record(t, "c", "k")
	alt.park(t, "c", "k2")
	h.record(t, "c", "k2")
	rows, err := h.s.InboxDeadList(h.ctx, h.db, &store.InboxDeadListParams{Consumer: "c", Limit: 10})
	noErr(t, "InboxDeadList", err)
	checkStrings(t, "default dead letters", deadKeys(rows), nil)
	if n := h.recordFailure(t, h.db, "c", "k3", "x"); n != 1 {
		t.Errorf("default failure count %d, want 1", n)
	}
	if n := alt.recordFailure(t, h.db, "c", "k3", "x"); n != 1 {
		t.Errorf("alt failure count %d, want 1", n)
	}
	if n := alt.purge(t, alt.purgeKeys, "c", -time.Hour, 100); n != 1 {
		t.Errorf("alt purge = %d, want 1 (its unparked key)", n)
	}
	checkStrings(t, "default keys", h.inboxKeys(t, "c"), []string{"k", "k2"})
	st, ast := h.stats(t).Inbox, alt.stats(t).Inbox
	if st.Keys != 2 || st.Dead != 0 || ast.Keys != 1 || ast.Dead != 1 {
		t.Errorf("inbox stats: default %+v, alt %+v", st, ast)
	}
}

// ... and partition locks of its own.
func testTableSetsLocks(t *testing.T, h *harness) {
	alt := newStore(t, h.db.Dialect, "alt")
	c1, c2, c3 := h.conn(t), h.conn(t), h.conn(t)
	checkParts(t, "default, first connection", h.lock(t, h.s, c1, 1, 2), []int{1, 2})
	checkParts(t, "alt, second connection", h.lock(t, alt, c2, 1, 2), []int{1, 2})
	checkParts(t, "default, third connection", h.lock(t, h.s, c3, 1, 2), nil)
	checkParts(t, "alt, third connection", h.lock(t, alt, c3, 1, 2), nil)
}

// A schema-qualified prefix: migrations create the schema (EnsureSchema) and the Store works on the tables
// there, apart from the connection's current schema.
func testTableSetsSchemaQualified(t *testing.T, h *harness) {
	schema := h.freshSchema(t)
	q := h.with(h.migrated(t, schema+".txbox"))
	ids := q.insert(t, unkeyed("q"))
	checkIDs(t, "claimed", rowIDs(q.claim(t, 0, 10)), ids)
	q.record(t, "c", "k")
	if n := h.count(t, schema+".txbox_outbox", ""); n != 1 {
		t.Errorf("%d rows in %s.txbox_outbox, want 1", n, schema)
	}
	if n := h.count(t, schema+".txbox_inbox", ""); n != 1 {
		t.Errorf("%d rows in %s.txbox_inbox, want 1", n, schema)
	}
	if n, m := h.count(t, h.tables().Outbox, ""), h.count(t, h.tables().Inbox, ""); n != 0 || m != 0 {
		t.Errorf("%d outbox and %d inbox rows in the default tables, want none", n, m)
	}
	noErr(t, "OutboxCheckSchema", q.s.OutboxCheckSchema(h.ctx, h.db))
	noErr(t, "InboxCheckSchema", q.s.InboxCheckSchema(h.ctx, h.db))
}
