package storetest

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/testdb"
)

// partitioned is the option of the cases that need the partitioned layout; unpartitionedDB the plain one.
var (
	partitioned     = []testdb.Option{testdb.Partitioned(true)}
	unpartitionedDB = []testdb.Option{testdb.Partitioned(false)}
)

// partitionCases are the cases of the partitioned layout's statements.
var partitionCases = []struct {
	method string
	cases  []testCase
}{
	{"PartitionState", []testCase{{"NewPartitioned", testPartitionStateNew, partitioned},
		{"Unpartitioned", testPartitionStateUnpartitioned, unpartitionedDB}}},
	{"PartitionDeclare", []testCase{{"PeriodOnceRetentionUp", testPartitionDeclare, partitioned}}},
	{"PartitionSetMode", []testCase{{"CompareAndSet", testPartitionSetMode, unpartitionedDB}}},
	{"PartitionCreate", []testCase{{"ListCreateDrop", testPartitionCreateListDrop, partitioned},
		{"MovesCatchAllRows", testPartitionCreateMovesCatchAll, partitioned},
		{"Published", testPartitionCreatePublished, partitioned}}},
	{"PartitionCarryParked", []testCase{{"OnlyParked", testPartitionCarryParked, partitioned}}},
	{"InboxClaimPartitioned", []testCase{{"WindowBuckets", testKeysClaimWindow, partitioned},
		{"DuplicateInOlderBucket", testKeysClaimOlderBucket, partitioned},
		{"OutsideRetention", testKeysClaimOutsideRetention, partitioned},
		{"Legacy", testKeysClaimLegacy, partitioned},
		{"Converting", testKeysClaimConverting, unpartitionedDB},
		{"ConcurrentCommit", testKeysClaimConcurrent, partitioned}}},
	{"InboxSettlePartitioned", []testCase{{"EveryRow", testKeysSettle, partitioned}}},
	{"InboxParkPartitioned", []testCase{{"ConvertingRecordedKey", testKeysParkConverting, unpartitionedDB}}},
	{"InboxUnparkPartitioned", []testCase{{"EveryRow", testKeysUnpark, partitioned}}},
	{"InboxLegacyOnly", []testCase{{"Since", testInboxLegacyOnly, unpartitionedDB}}},
	{"InboxKeysPartitioned", []testCase{{"ListedOnce", testKeysListedOnce, unpartitionedDB}}},
	{"PublishedSwap", []testCase{{"SwapCopyDrop", testPublishedSwap, unpartitionedDB}}},
}

const day = 24 * time.Hour

// layout is a partitioned layout of day-long periods, 7 days' retention and a two-minute claim window.
func layout(mode store.LayoutMode) *store.KeysLayout {
	return &store.KeysLayout{Mode: mode, Period: day, Retention: 7 * day, Window: 2 * time.Minute}
}

// bucketOf is the day bucket of t.
func bucketOf(t time.Time) int64 { return store.BucketOf(t, day) }

// keyBuckets lists the buckets of (consumer, key) in the partitioned table.
func (h *harness) keyBuckets(t *testing.T, consumer, key string) []int64 {
	t.Helper()
	var out []int64
	q := "SELECT bucket FROM " + h.tables().InboxKeys + " WHERE consumer = ? AND msg_key = ? ORDER BY bucket"
	if err := h.db.SelectContext(h.ctx, &out, h.db.Rebind(q), consumer, key); err != nil {
		t.Fatalf("buckets of %s: %v", key, err)
	}
	return out
}

// claimKeys runs one partitioned claim at at (zero: the database's clock) and commits it.
func (h *harness) claimKeys(t *testing.T, l *store.KeysLayout, key string, at time.Time) store.InboxClaimResult {
	t.Helper()
	tx := h.begin(t)
	r := h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: key, Fingerprint: fp("a"), ReceivedAt: at, Keys: l})
	commit(t, tx)
	return r
}

func (h *harness) dbNow(t *testing.T) time.Time {
	t.Helper()
	st, err := h.s.PartitionState(h.ctx, h.db, store.InboxKeysTable)
	if err != nil {
		t.Fatal(err)
	}
	return st.Now
}

func testPartitionStateNew(t *testing.T, h *harness) {
	for _, table := range []store.PartitionedTable{store.InboxKeysTable, store.PublishedTable} {
		st, err := h.s.PartitionState(h.ctx, h.db, table)
		if err != nil || st.Mode != store.Partitioned || st.Period != 0 || st.Retention != 0 {
			t.Errorf("%s of a new partitioned installation: %+v, %v; want partitioned without period", table, st, err)
		}
		within(t, "database clock", time.Since(st.Now), -time.Minute, time.Minute)
	}
}

func testPartitionStateUnpartitioned(t *testing.T, h *harness) {
	st, err := h.s.PartitionState(h.ctx, h.db, store.InboxKeysTable)
	if err != nil || st.Mode != store.Unpartitioned {
		t.Errorf("inbox keys of an installation created unpartitioned: %+v, %v", st, err)
	}
}

func testPartitionDeclare(t *testing.T, h *harness) {
	declare := func(period, retention time.Duration) store.PartitionState {
		t.Helper()
		st, err := h.s.PartitionDeclare(h.ctx, h.db, store.InboxKeysTable, period, retention)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := declare(day, 7*day); st.Period != day || st.Retention != 7*day {
		t.Errorf("first declare: %+v", st)
	}
	if st := declare(2*day, 3*day); st.Period != day || st.Retention != 7*day {
		t.Errorf("a second period and a shorter retention changed the state: %+v", st)
	}
	if st := declare(2*day, 10*day); st.Period != day || st.Retention != 10*day {
		t.Errorf("a longer retention: %+v, want retention 10 days, period unchanged", st)
	}
	if ok, err := h.s.PartitionSetRetention(h.ctx, h.db, store.InboxKeysTable, 2*day); !ok || err != nil {
		t.Fatalf("PartitionSetRetention: %v, %v", ok, err)
	}
	if st := declare(day, day); st.Retention != 2*day {
		t.Errorf("retention lowered by PartitionSetRetention: %+v, want 2 days", st)
	}
	if _, err := h.s.PartitionDeclare(h.ctx, h.db, store.InboxKeysTable, 0, day); err == nil {
		t.Error("a zero period was accepted")
	}
}

func testPartitionSetMode(t *testing.T, h *harness) {
	set := func(from, to store.LayoutMode) bool {
		t.Helper()
		ok, err := h.s.PartitionSetMode(h.ctx, h.db, store.InboxKeysTable, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	before := h.dbNow(t)
	if set(store.Converting, store.Partitioned) {
		t.Error("changed from a mode the table is not in")
	}
	if !set(store.Unpartitioned, store.Converting) {
		t.Fatal("did not change from the table's mode")
	}
	st, _ := h.s.PartitionState(h.ctx, h.db, store.InboxKeysTable)
	if st.Mode != store.Converting || st.ChangedAt.Before(before.Add(-time.Second)) {
		t.Errorf("after the change: %+v (changed before %s)", st, before)
	}
}

// listPartitions lists table's partitions, failing the test on error.
func (h *harness) listPartitions(t *testing.T, table store.PartitionedTable) []store.Partition {
	t.Helper()
	ps, err := h.s.PartitionList(h.ctx, h.db, table, day)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// ddl runs f on a connection of its own, as the partition manager does.
func (h *harness) ddl(t *testing.T, f func(c *sql.Conn) error) error {
	t.Helper()
	c, err := h.db.Conn(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return f(c)
}

func bounds(ps []store.Partition) string {
	var s []string
	for _, p := range ps {
		if p.CatchAll {
			s = append(s, "catch-all")
		} else {
			s = append(s, fmt.Sprintf("%d-%d", p.Lo, p.Hi))
		}
	}
	return fmt.Sprint(s)
}

func testPartitionCreateListDrop(t *testing.T, h *harness) {
	if got := bounds(h.listPartitions(t, store.InboxKeysTable)); got != "[catch-all]" {
		t.Fatalf("partitions of a new table: %s", got)
	}
	create := func(cuts ...int64) {
		t.Helper()
		if err := h.ddl(t, func(c *sql.Conn) error {
			return h.s.PartitionCreate(h.ctx, c, store.InboxKeysTable, day, cuts)
		}); err != nil {
			t.Fatal(err)
		}
	}
	create(100, 101, 102)
	create(102, 103)
	ps := h.listPartitions(t, store.InboxKeysTable)
	want := "[100-101 101-102 102-103 catch-all]"
	if h.mysql {
		want = fmt.Sprintf("[%d-101 101-102 102-103 catch-all]", int64(-1<<63)) // the first takes every lower bucket
	}
	if got := bounds(ps); got != want {
		t.Fatalf("partitions: %s, want %s", got, want)
	}
	if err := h.ddl(t, func(c *sql.Conn) error { return h.s.PartitionDrop(h.ctx, c, store.InboxKeysTable, ps[0]) }); err != nil {
		t.Fatal(err)
	}
	if err := h.ddl(t, func(c *sql.Conn) error { return h.s.PartitionDrop(h.ctx, c, store.InboxKeysTable, ps[3]) }); err == nil {
		t.Error("dropped the catch-all")
	}
	want = "[101-102 102-103 catch-all]"
	if h.mysql {
		want = fmt.Sprintf("[%d-102 102-103 catch-all]", int64(-1<<63))
	}
	if got := bounds(h.listPartitions(t, store.InboxKeysTable)); got != want {
		t.Errorf("after the drop: %s, want %s", got, want)
	}
}

// Rows the catch-all holds for a bucket move into the bucket's partition when it is made, and are found there.
func testPartitionCreateMovesCatchAll(t *testing.T, h *harness) {
	now := h.dbNow(t)
	l := layout(store.Partitioned)
	for _, k := range []string{"a", "b"} {
		if r := h.claimKeys(t, l, k, now.Add(-time.Hour)); !r.Inserted {
			t.Fatalf("claim %s: %+v", k, r)
		}
	}
	n, lo, hi, err := h.s.PartitionCatchAllRows(h.ctx, h.db, store.InboxKeysTable, day)
	b := bucketOf(now.Add(-time.Hour))
	if err != nil || n < 2 || lo != b {
		t.Fatalf("catch-all rows: %d [%d, %d], %v; want 2 from bucket %d", n, lo, hi, err, b)
	}
	if err := h.ddl(t, func(c *sql.Conn) error {
		return h.s.PartitionCreate(h.ctx, c, store.InboxKeysTable, day, []int64{b, b + 1, b + 2})
	}); err != nil {
		t.Fatal(err)
	}
	if n, _, _, err := h.s.PartitionCatchAllRows(h.ctx, h.db, store.InboxKeysTable, day); err != nil || n != 0 {
		t.Errorf("catch-all rows after the partitions were made: %d, %v", n, err)
	}
	if r := h.claimKeys(t, l, "a", time.Time{}); r.Inserted {
		t.Error("a key moved out of the catch-all was claimed again")
	}
}

func testPartitionCreatePublished(t *testing.T, h *harness) {
	b := bucketOf(h.dbNow(t))
	if err := h.ddl(t, func(c *sql.Conn) error {
		return h.s.PartitionCreate(h.ctx, c, store.PublishedTable, day, []int64{b, b + 1})
	}); err != nil {
		t.Fatal(err)
	}
	ps := h.listPartitions(t, store.PublishedTable)
	if len(ps) != 2 || ps[0].Hi != b+1 || !ps[1].CatchAll {
		t.Fatalf("published partitions %s, want one ending at bucket %d and the catch-all", bounds(ps), b+1)
	}
	h.publish(t, 0)
	if n, _, _, err := h.s.PartitionCatchAllRows(h.ctx, h.db, store.PublishedTable, day); err != nil || n != 0 {
		t.Errorf("a row published now went to the catch-all: %d, %v", n, err)
	}
}

func testPartitionCarryParked(t *testing.T, h *harness) {
	l := layout(store.Partitioned)
	old := h.dbNow(t).Add(-10 * day)
	b := bucketOf(old)
	if err := h.ddl(t, func(c *sql.Conn) error {
		return h.s.PartitionCreate(h.ctx, c, store.InboxKeysTable, day, []int64{b, b + 1, b + 20})
	}); err != nil {
		t.Fatal(err)
	}
	h.claimKeys(t, l, "done", old)
	tx := h.begin(t)
	if ok, err := h.s.InboxPark(h.ctx, tx, &store.InboxParkParams{Consumer: "c", Key: "poison", Fingerprint: fp("p"),
		Payload: []byte("x"), Attempts: 1, Keys: l}); !ok || err != nil {
		t.Fatalf("park: %v, %v", ok, err)
	}
	commit(t, tx)
	h.exec(t, "UPDATE "+h.tables().InboxKeys+" SET bucket = ? WHERE msg_key = 'poison'", b)
	ps := h.listPartitions(t, store.InboxKeysTable)
	tx = h.begin(t)
	n, err := h.s.PartitionCarryParked(h.ctx, tx, ps[0], b+5)
	if err != nil || n != 1 {
		t.Fatalf("PartitionCarryParked = %d, %v; want the one parked key", n, err)
	}
	commit(t, tx)
	if got := h.keyBuckets(t, "c", "poison"); !slices.Equal(got, []int64{b, b + 5}) {
		t.Errorf("parked key in buckets %v, want %d and %d", got, b, b+5)
	}
	if got := h.keyBuckets(t, "c", "done"); len(got) != 1 {
		t.Errorf("processed key copied: buckets %v", got)
	}
}

// A claim records its key in its bucket and, within the window of the next boundary, in the next one.
func testKeysClaimWindow(t *testing.T, h *harness) {
	l := layout(store.Partitioned)
	boundary := h.dbNow(t).Truncate(day).Add(day)
	b := bucketOf(boundary)
	for key, tc := range map[string]struct {
		at   time.Time
		want []int64
	}{
		"far":    {boundary.Add(-3 * l.Window), []int64{b - 1}},
		"near":   {boundary.Add(-l.Window / 2), []int64{b - 1, b}},
		"edge":   {boundary.Add(-l.Window), []int64{b - 1, b}},
		"after":  {boundary, []int64{b}},
		"window": {boundary.Add(-time.Microsecond), []int64{b - 1, b}},
	} {
		if r := h.claimKeys(t, l, key, tc.at); !r.Inserted {
			t.Errorf("%s: %+v, want inserted", key, r)
		}
		if got := h.keyBuckets(t, "c", key); !slices.Equal(got, tc.want) {
			t.Errorf("%s recorded in %v, want %v", key, got, tc.want)
		}
	}
}

// A key recorded days ago in an older bucket is a duplicate of a claim now, with its fingerprint and flag.
func testKeysClaimOlderBucket(t *testing.T, h *harness) {
	l := layout(store.Partitioned)
	now := h.dbNow(t)
	h.claimKeys(t, l, "k", now.Add(-6*day))
	r := h.claimKeys(t, l, "k", time.Time{})
	if r.Inserted || string(r.Fingerprint) != string(fp("a")) || r.Parked {
		t.Errorf("claim of a key recorded 6 days ago: %+v, want its record", r)
	}
	if got := h.keyBuckets(t, "c", "k"); len(got) != 1 {
		t.Errorf("buckets %v: the duplicate was recorded", got)
	}
}

// A key recorded before the retention is not looked for: it is new again (its partition would have gone).
func testKeysClaimOutsideRetention(t *testing.T, h *harness) {
	l := layout(store.Partitioned)
	h.claimKeys(t, l, "k", h.dbNow(t).Add(-9*day))
	if r := h.claimKeys(t, l, "k", time.Time{}); !r.Inserted {
		t.Errorf("claim of a key older than the retention: %+v, want inserted", r)
	}
}

// After a conversion, keys of <prefix>_inbox are duplicates (fingerprint and parked flag read from there).
func testKeysClaimLegacy(t *testing.T, h *harness) {
	h.record(t, "c", "legacy")
	h.park(t, "c", "legacy-parked")
	l := layout(store.Partitioned)
	l.Legacy = true
	rec, _ := h.inboxRow(t, "c", "legacy")
	if r := h.claimKeys(t, l, "legacy", time.Time{}); r.Inserted || string(r.Fingerprint) != string(rec.Fingerprint) {
		t.Errorf("claim of a key in the unpartitioned table: %+v, want its record", r)
	}
	if r := h.claimKeys(t, l, "legacy-parked", time.Time{}); r.Inserted || !r.Parked {
		t.Errorf("claim of a parked key in the unpartitioned table: %+v, want parked", r)
	}
	l.Legacy = false
	if r := h.claimKeys(t, l, "legacy", time.Time{}); !r.Inserted {
		t.Errorf("claim without looking at the unpartitioned table: %+v, want inserted", r)
	}
}

// While the inbox converts, a claim records its key in both tables and finds keys recorded in either.
func testKeysClaimConverting(t *testing.T, h *harness) {
	l := layout(store.Converting)
	if r := h.claimKeys(t, l, "k", time.Time{}); !r.Inserted {
		t.Fatalf("claim: %+v", r)
	}
	if _, found := h.inboxRow(t, "c", "k"); !found || len(h.keyBuckets(t, "c", "k")) == 0 {
		t.Errorf("key not in both tables")
	}
	h.record(t, "c", "old")
	p := layout(store.Partitioned)
	h.claimKeys(t, p, "new", time.Time{})
	for _, k := range []string{"k", "old", "new"} {
		if r := h.claimKeys(t, l, k, time.Time{}); r.Inserted {
			t.Errorf("%s claimed again while converting: %+v", k, r)
		}
	}
}

// Two claims of one key in the same bucket: the second waits for the first and then finds the key.
func testKeysClaimConcurrent(t *testing.T, h *harness) {
	l := layout(store.Partitioned)
	tx1 := h.begin(t)
	if r := h.inboxClaim(t, tx1, store.InboxClaimParams{Consumer: "c", Key: "k", Fingerprint: fp("a"), Keys: l}); !r.Inserted {
		t.Fatalf("first claim: %+v", r)
	}
	done := make(chan store.InboxClaimResult, 1)
	errc := make(chan error, 1)
	go func() {
		tx2, err := h.db.BeginTx(h.ctx, nil)
		if err != nil {
			errc <- err
			return
		}
		defer tx2.Rollback()
		r, err := h.s.InboxClaim(h.ctx, tx2, &store.InboxClaimParams{Consumer: "c", Key: "k", Fingerprint: fp("a"), Keys: l})
		errc <- err
		done <- r
	}()
	select {
	case <-errc:
		t.Fatal("the second claim did not wait for the first")
	case <-time.After(200 * time.Millisecond): // expected to block: a claim that returned would be the bug
	}
	commit(t, tx1)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Inserted || string(r.Fingerprint) != string(fp("a")) {
		t.Errorf("second claim after the first committed: %+v, want the record", r)
	}
}

func testKeysSettle(t *testing.T, h *harness) {
	l := layout(store.Partitioned)
	boundary := h.dbNow(t).Truncate(day)
	tx := h.begin(t)
	if ok, err := h.s.InboxPark(h.ctx, tx, &store.InboxParkParams{Consumer: "c", Key: "k", Fingerprint: fp("a"),
		Payload: []byte("x"), Attempts: 1, Keys: l}); !ok || err != nil {
		t.Fatalf("park: %v, %v", ok, err)
	}
	commit(t, tx)
	h.exec(t, "UPDATE "+h.tables().InboxKeys+" SET bucket = ? WHERE msg_key = 'k'", bucketOf(boundary.Add(-2*day)))
	tx = h.begin(t)
	ok, err := h.s.InboxSettle(h.ctx, tx, &store.InboxKeyParams{Consumer: "c", Key: "k", Fingerprint: fp("a"), Keys: l})
	if err != nil || !ok {
		t.Fatalf("settle: %v, %v", ok, err)
	}
	commit(t, tx)
	var parked int
	if err := h.db.GetContext(h.ctx, &parked, h.db.Rebind("SELECT COUNT(*) FROM "+h.tables().InboxKeys+" WHERE msg_key = 'k' AND parked = ?"), true); err != nil || parked != 0 {
		t.Errorf("%d rows still parked (%v)", parked, err)
	}
	if got := h.keyBuckets(t, "c", "k"); len(got) < 2 || got[len(got)-1] < bucketOf(boundary) {
		t.Errorf("settled key in buckets %v, want recorded afresh now too", got)
	}
	tx = h.begin(t)
	if ok, err := h.s.InboxSettle(h.ctx, tx, &store.InboxKeyParams{Consumer: "c", Key: "k", Fingerprint: fp("a"), Keys: l}); ok || err != nil {
		t.Errorf("settle of a processed key: %v, %v; want false", ok, err)
	}
	commit(t, tx)
}

func testKeysUnpark(t *testing.T, h *harness) {
	l := layout(store.Partitioned)
	tx := h.begin(t)
	if ok, err := h.s.InboxPark(h.ctx, tx, &store.InboxParkParams{Consumer: "c", Key: "k", Fingerprint: fp("a"),
		Payload: []byte("x"), Attempts: 1, Keys: l}); !ok || err != nil {
		t.Fatalf("park: %v, %v", ok, err)
	}
	commit(t, tx)
	h.claimKeys(t, l, "done", time.Time{})
	for _, k := range []string{"k", "done"} {
		tx = h.begin(t)
		ok, err := h.s.InboxUnpark(h.ctx, tx, &store.InboxKeyParams{Consumer: "c", Key: k, Keys: l})
		commit(t, tx)
		if err != nil || ok != (k == "k") {
			t.Errorf("unpark %s: %v, %v", k, ok, err)
		}
	}
	if got := h.keyBuckets(t, "c", "k"); len(got) != 0 {
		t.Errorf("parked key left in buckets %v", got)
	}
	if got := h.keyBuckets(t, "c", "done"); len(got) == 0 {
		t.Error("a processed key was unparked")
	}
}

func testInboxLegacyOnly(t *testing.T, h *harness) {
	before := h.dbNow(t).Add(-time.Second)
	h.record(t, "c", "old-way")
	h.claimKeys(t, layout(store.Converting), "both", time.Time{})
	keys, err := h.s.InboxLegacyOnly(h.ctx, h.db, before, 10)
	if err != nil || !slices.Equal(keys, []string{"c/old-way"}) {
		t.Errorf("InboxLegacyOnly = %v, %v; want c/old-way", keys, err)
	}
	if keys, err := h.s.InboxLegacyOnly(h.ctx, h.db, before.Add(time.Hour), 10); err != nil || len(keys) != 0 {
		t.Errorf("InboxLegacyOnly after the keys = %v, %v", keys, err)
	}
}

func testPublishedSwap(t *testing.T, h *harness) {
	ids := h.publish(t, 0, 0, 2*day)
	if old, err := h.s.PublishedOldExists(h.ctx, h.db); err != nil || old {
		t.Fatalf("old table before the swap: %v, %v", old, err)
	}
	if err := h.ddl(t, func(c *sql.Conn) error { return h.s.PublishedSwap(h.ctx, c) }); err != nil {
		t.Fatal(err)
	}
	st, err := h.s.PartitionState(h.ctx, h.db, store.PublishedTable)
	if err != nil || st.Mode != store.Partitioned {
		t.Fatalf("after the swap: %+v, %v", st, err)
	}
	if n := h.count(t, h.tables().OutboxPublished, "1 = 1"); n != 0 {
		t.Fatalf("%d rows in the new table before the copy", n)
	}
	h.publish(t, 0) // relays write the new table
	since := h.dbNow(t).Add(-day)
	last, n, err := h.s.PublishedCopyOld(h.ctx, h.db, 0, since, 2)
	if err != nil || n != 2 || last != ids[1] {
		t.Fatalf("copy = %d, %d, %v; want 2 rows up to id %d", last, n, err, ids[1])
	}
	if _, n, err = h.s.PublishedCopyOld(h.ctx, h.db, 0, since, 10); err != nil || n != 3 {
		t.Fatalf("copy again from the start = %d, %v; want the 3 rows read, copied ones skipped", n, err)
	}
	if c := h.count(t, h.tables().OutboxPublished, "1 = 1"); c != 3 {
		t.Errorf("%d rows in the new table, want 3 (two copied, the expired one left, one published after the swap)", c)
	}
	if err := h.ddl(t, func(c *sql.Conn) error { return h.s.PublishedDropOld(h.ctx, c) }); err != nil {
		t.Fatal(err)
	}
	if old, err := h.s.PublishedOldExists(h.ctx, h.db); err != nil || old {
		t.Errorf("old table after the drop: %v, %v", old, err)
	}
}

// While converting, parking a key recorded in the partitioned table only leaves no parked row behind in
// <prefix>_inbox, even when the caller commits (a counted failure).
func testKeysParkConverting(t *testing.T, h *harness) {
	h.claimKeys(t, layout(store.Partitioned), "done", time.Time{})
	tx := h.begin(t)
	ok, err := h.s.InboxPark(h.ctx, tx, &store.InboxParkParams{Consumer: "c", Key: "done", Fingerprint: fp("a"),
		Payload: []byte("x"), Attempts: 1, Keys: layout(store.Converting)})
	if err != nil || ok {
		t.Fatalf("park of a recorded key: %v, %v; want false", ok, err)
	}
	commit(t, tx)
	if _, found := h.inboxRow(t, "c", "done"); found {
		t.Error("a parked row was left in the unpartitioned table")
	}
	tx = h.begin(t)
	if ok, err := h.s.InboxPark(h.ctx, tx, &store.InboxParkParams{Consumer: "c", Key: "new", Fingerprint: fp("a"),
		Payload: []byte("x"), Attempts: 1, Keys: layout(store.Converting)}); err != nil || !ok {
		t.Fatalf("park of a new key: %v, %v", ok, err)
	}
	commit(t, tx)
	if r, found := h.inboxRow(t, "c", "new"); !found || !r.Parked || len(h.keyBuckets(t, "c", "new")) == 0 {
		t.Error("a new key was not parked in both tables")
	}
}

// Operators see a key once whichever table and however many partitions hold it: InboxKeys pages through both
// tables in key order, TraceKey finds it once, InboxConsumers lists its consumer.
func testKeysListedOnce(t *testing.T, h *harness) {
	l := layout(store.Converting)
	boundary := h.dbNow(t).Truncate(day)
	h.claimKeys(t, l, "a", boundary.Add(-time.Minute)) // both tables, two partitions
	h.claimKeys(t, layout(store.Partitioned), "b", boundary.Add(-time.Minute))
	h.record(t, "c", "c") // the unpartitioned table only
	h.claimKeys(t, layout(store.Partitioned), "d", time.Time{})
	var got []string
	for after := ""; ; {
		page, err := h.s.InboxKeys(h.ctx, h.db, &store.InboxKeysParams{Consumer: "c", AfterKey: after, Limit: 2})
		noErr(t, "InboxKeys", err)
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			got = append(got, r.Key)
		}
		after = page[len(page)-1].Key
	}
	checkStrings(t, "keys", got, []string{"a", "b", "c", "d"})
	tr := h.trace(t, store.KeyMatch{Key: "a"}, 10)
	if len(tr.Keys) != 1 {
		t.Errorf("trace of a key in both tables and two partitions: %d rows, want 1", len(tr.Keys))
	}
	consumers, err := h.s.InboxConsumers(h.ctx, h.db)
	noErr(t, "InboxConsumers", err)
	checkStrings(t, "consumers", consumers, []string{"c"})
}
