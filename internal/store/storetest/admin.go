package storetest

import (
	"database/sql"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// adminCases are the AdminStore's conformance cases (the operator surfaces: txbox trace and the console).
var adminCases = []struct {
	method string
	cases  []testCase
}{
	{"TraceKey", []testCase{{"EveryTable", testTraceKeyEveryTable, nil}, {"Exact", testTraceKeyExact, nil},
		{"Limit", testTraceKeyLimit, nil}, {"Empty", testTraceKeyEmpty, nil}}},
	{"OutboxBacklog", []testCase{{"PerTopic", testOutboxBacklog, nil}}},
	{"OutboxDeadSearch", []testCase{{"Filters", testOutboxDeadSearch, nil}}},
	{"InboxDeadSearch", []testCase{{"Filters", testInboxDeadSearch, nil}}},
	{"InboxConsumers", []testCase{{"EveryTable", testInboxConsumers, nil}}},
	{"InboxKeys", []testCase{{"PagingAndMatch", testInboxKeys, nil}}},
	{"OutboxDelete", []testCase{{"KeepStampsPublishTime", testOutboxDeleteKeepTime, nil}}},
}

// hostileKey is a business key an operator surface must show as text: markup and terminal escapes.
const hostileKey = "o-1/<script>alert(1)</script>\x1b[31mred\x1b]0;title\a"

func (h *harness) trace(t *testing.T, m store.KeyMatch, limit int) *store.TraceRows {
	t.Helper()
	tx := h.beginIso(t, sql.LevelRepeatableRead)
	rows, err := h.s.TraceKey(h.ctx, tx, &store.TraceParams{Match: m, Limit: limit})
	noErr(t, "TraceKey", err)
	commit(t, tx)
	return rows
}

func messageKeys(ms []store.TraceMessage) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Key)
	}
	return out
}

// pairs renders inbox rows as "consumer key" strings.
func pairs[T any](rows []T, f func(T) (string, string)) []string {
	out := []string{}
	for _, r := range rows {
		c, k := f(r)
		out = append(out, c+" "+k)
	}
	return out
}

// A key and its children are found in each of the six tables with the columns the trace shows, and nothing
// else is: not a longer key that shares the text ("o-10"), not a sibling that sorts next to the range ("o-1."),
// not another case or a trailing space.
func testTraceKeyEveryTable(t *testing.T, h *harness) {
	before := time.Now()
	pending := unkeyed("o-1/created")
	pending.Tag, pending.Headers = "tag", []byte(`{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`)
	ids := h.insert(t, pending, unkeyed("o-10/x"), unkeyed("o-1.x"), unkeyed("O-1/created"), unkeyed("o-1 "))
	h.retryRows(t, retry(ids[0], -1, time.Hour, "broker says no"))
	pub := h.insert(t, unkeyed("o-1/sent"))
	h.retryRows(t, retry(pub[0], -1, 0, "once"))
	h.deleteRows(t, true, ref(pub[0], -1))
	dead := h.bury(t, keyed(3, "s", "o-1"), unkeyed("o-10"))
	h.record(t, "c1", "o-1/payment")
	h.record(t, "c1", hostileKey)
	h.record(t, "c1", "o-10/payment")
	h.record(t, "c2", "O-1/payment")
	h.recordFailure(t, h.db, "c2", "o-1/failing", "handler says no")
	h.recordFailure(t, h.db, "c2", "o-1/failing", "handler says no again")
	parked := h.park(t, "c3", "o-1/parked")
	after := time.Now()

	tr := h.trace(t, store.KeyMatch{Key: "o-1", Children: true}, 100)
	recent(t, "Now", tr.Now, before, after)
	if tr.Truncated {
		t.Error("Truncated with a limit above every table's rows")
	}
	checkStrings(t, "pending", messageKeys(tr.Pending), []string{"o-1/created"})
	checkStrings(t, "published", messageKeys(tr.Published), []string{"o-1/sent"})
	checkStrings(t, "dead", messageKeys(tr.Dead), []string{"o-1"})
	checkStrings(t, "inbox keys", pairs(tr.Keys, func(r store.InboxKeyRow) (string, string) { return r.Consumer, r.Key }),
		[]string{"c1 o-1/<script>alert(1)</script>\x1b[31mred\x1b]0;title\a", "c1 o-1/payment", "c3 o-1/parked"})
	checkStrings(t, "attempts", pairs(tr.Attempts, func(r store.TraceInboxAttempts) (string, string) { return r.Consumer, r.Key }),
		[]string{"c2 o-1/failing"})
	checkStrings(t, "parked", pairs(tr.Parked, func(r store.TraceInboxDead) (string, string) { return r.Consumer, r.Key }),
		[]string{"c3 o-1/parked"})
	if t.Failed() {
		return
	}

	p := tr.Pending[0]
	if p.ID != ids[0] || p.Topic != "orders" || p.Tag != "tag" || p.PayloadBytes != len(pending.Payload) || p.Attempts != 1 ||
		p.LastError != "broker says no" {
		t.Errorf("pending row = %+v", p)
	}
	checkHeaders(t, "pending row", p.Headers, pending.Headers)
	recent(t, "pending CreatedAt", p.CreatedAt, before, after)
	within(t, "pending row due in", p.AvailableAt.Sub(tr.Now), 59*time.Minute, time.Hour)

	s := tr.Published[0]
	if s.ID != pub[0] || s.Attempts != 1 || s.LastError != "" || s.Headers != nil {
		t.Errorf("published row = %+v", s)
	}
	recent(t, "PublishedAt", s.PublishedAt, before, after)
	if s.PublishedAt.Before(s.CreatedAt) {
		t.Errorf("published at %v before created at %v", s.PublishedAt, s.CreatedAt)
	}

	d := tr.Dead[0]
	if d.ID != dead[0] || d.ShardingKey != "s" || d.Attempts != 2 || d.LastError != "error of o-1" {
		t.Errorf("dead row = %+v", d)
	}
	recent(t, "DeadAt", d.DeadAt, before, after)

	for _, k := range tr.Keys {
		recent(t, "ReceivedAt", k.ReceivedAt, before, after)
		if k.Parked != (k.Consumer == "c3") {
			t.Errorf("inbox key %s %q: parked %v", k.Consumer, k.Key, k.Parked)
		}
	}
	a := tr.Attempts[0]
	if a.Attempts != 2 || a.LastError != "handler says no again" {
		t.Errorf("attempts = %+v", a)
	}
	recent(t, "attempts UpdatedAt", a.UpdatedAt, before, after)

	want := parkParams("c3", "o-1/parked")
	k := tr.Parked[0]
	if k.ID != parked || k.Topic != want.Topic || k.MessageID != want.MessageID || k.PayloadBytes != len(want.Payload) ||
		k.Attempts != want.Attempts || k.LastError != want.LastError {
		t.Errorf("parked = %+v, want %+v", k, want)
	}
	checkHeaders(t, "parked", k.Headers, want.Headers)
	recent(t, "ParkedAt", k.ParkedAt, before, after)
}

// Without Children only the key itself matches; markup and escapes in a key are matched byte for byte.
func testTraceKeyExact(t *testing.T, h *harness) {
	h.insert(t, unkeyed("o-1"), unkeyed("o-1/created"))
	h.record(t, "c1", "o-1/payment")
	h.record(t, "c1", hostileKey)
	tr := h.trace(t, store.KeyMatch{Key: "o-1"}, 10)
	checkStrings(t, "pending", messageKeys(tr.Pending), []string{"o-1"})
	if len(tr.Keys) != 0 {
		t.Errorf("inbox keys = %+v, want none", tr.Keys)
	}
	tr = h.trace(t, store.KeyMatch{Key: hostileKey}, 10)
	checkStrings(t, "inbox keys", pairs(tr.Keys, func(r store.InboxKeyRow) (string, string) { return r.Consumer, r.Key }),
		[]string{"c1 " + hostileKey})
}

// Limit bounds each table, and each consumer's share of the inbox tables, and says so.
func testTraceKeyLimit(t *testing.T, h *harness) {
	h.insert(t, unkeyed("k/1"), unkeyed("k/2"), unkeyed("k/3"))
	for _, c := range []string{"c1", "c2"} {
		for _, k := range []string{"k/1", "k/2", "k/3"} {
			h.record(t, c, k)
		}
	}
	tr := h.trace(t, store.KeyMatch{Key: "k", Children: true}, 2)
	if !tr.Truncated {
		t.Error("not Truncated with 3 rows per table and a limit of 2")
	}
	checkStrings(t, "pending", messageKeys(tr.Pending), []string{"k/1", "k/2"})
	checkStrings(t, "inbox keys", pairs(tr.Keys, func(r store.InboxKeyRow) (string, string) { return r.Consumer, r.Key }),
		[]string{"c1 k/1", "c1 k/2", "c2 k/1", "c2 k/2"})
	if tr := h.trace(t, store.KeyMatch{Key: "k", Children: true}, 3); tr.Truncated || len(tr.Keys) != 6 || len(tr.Pending) != 3 {
		t.Errorf("limit 3: truncated %v, %d keys, %d pending; want false, 6, 3", tr.Truncated, len(tr.Keys), len(tr.Pending))
	}
	for _, limit := range []int{0, 1001} {
		if _, err := h.s.TraceKey(h.ctx, h.db, &store.TraceParams{Match: store.KeyMatch{Key: "k"}, Limit: limit}); err == nil {
			t.Errorf("TraceKey with limit %d: no error", limit)
		}
	}
}

func testTraceKeyEmpty(t *testing.T, h *harness) {
	tr := h.trace(t, store.KeyMatch{Key: "nothing", Children: true}, 10)
	if len(tr.Pending)+len(tr.Published)+len(tr.Dead)+len(tr.Keys)+len(tr.Attempts)+len(tr.Parked) != 0 || tr.Truncated {
		t.Errorf("trace of an empty installation = %+v", tr)
	}
}

func testOutboxBacklog(t *testing.T, h *harness) {
	rows := []store.OutboxInsertRow{unkeyed("a1"), delayed(unkeyed("a2"), time.Hour), unkeyed("b1")}
	rows[2].Topic = "billing"
	ids := h.insert(t, rows...)
	h.setAgo(t, h.tables().Outbox, "created_at", time.Hour, "id = ?", ids[2])
	got, err := h.s.OutboxBacklog(h.ctx, h.db)
	noErr(t, "OutboxBacklog", err)
	if len(got) != 2 || got[0].Topic != "billing" || got[1].Topic != "orders" {
		t.Fatalf("OutboxBacklog = %+v, want billing then orders", got)
	}
	if got[0].Pending != 1 || got[0].Due != 1 || got[1].Pending != 2 || got[1].Due != 1 {
		t.Errorf("OutboxBacklog counts = %+v", got)
	}
	within(t, "billing's oldest age", got[0].OldestAge, time.Hour, time.Hour+time.Minute)
	within(t, "orders' oldest age", got[1].OldestAge, -time.Second, time.Minute)
	h.exec(t, "DELETE FROM "+h.tables().Outbox)
	if got, err := h.s.OutboxBacklog(h.ctx, h.db); err != nil || len(got) != 0 {
		t.Errorf("OutboxBacklog of an empty outbox = %+v, %v", got, err)
	}
}

func testOutboxDeadSearch(t *testing.T, h *harness) {
	rows := []store.OutboxInsertRow{unkeyed("o-1/a"), unkeyed("o-1/b"), unkeyed("o-10/a"), unkeyed("o-1")}
	rows[1].Topic = "billing"
	ids := h.bury(t, rows...)
	search := func(p store.DeadSearchParams) []int64 {
		t.Helper()
		if p.Limit == 0 {
			p.Limit = 100
		}
		got, err := h.s.OutboxDeadSearch(h.ctx, h.db, &p)
		noErr(t, "OutboxDeadSearch", err)
		return deadIDs(got)
	}
	checkIDs(t, "all", search(store.DeadSearchParams{}), ids)
	checkIDs(t, "topic billing", search(store.DeadSearchParams{Topic: "billing"}), ids[1:2])
	checkIDs(t, "key o-1 and children", search(store.DeadSearchParams{Match: store.KeyMatch{Key: "o-1", Children: true}}),
		[]int64{ids[0], ids[1], ids[3]})
	checkIDs(t, "key o-1", search(store.DeadSearchParams{Match: store.KeyMatch{Key: "o-1"}}), ids[3:])
	checkIDs(t, "orders under o-1", search(store.DeadSearchParams{Topic: "orders", Match: store.KeyMatch{Key: "o-1", Children: true}}),
		[]int64{ids[0], ids[3]})
	checkIDs(t, "ids", search(store.DeadSearchParams{IDs: []int64{ids[2], ids[0], 999999}}), []int64{ids[0], ids[2]})
	checkIDs(t, "first page", search(store.DeadSearchParams{Limit: 2}), ids[:2])
	checkIDs(t, "second page", search(store.DeadSearchParams{AfterID: ids[1], Limit: 2}), ids[2:])
	got, err := h.s.OutboxDeadSearch(h.ctx, h.db, &store.DeadSearchParams{IDs: ids[:1], Limit: 1})
	noErr(t, "OutboxDeadSearch", err)
	if len(got) != 1 || got[0].Key != "o-1/a" || got[0].LastError != "error of o-1/a" || string(got[0].Payload) != "payload of o-1/a" {
		t.Errorf("dead letter = %+v", got)
	}
	for _, p := range []store.DeadSearchParams{{Limit: 0}, {Limit: 1001}, {Limit: 1, Consumer: "c"},
		{Limit: 1, IDs: make([]int64, 1001)}} {
		if _, err := h.s.OutboxDeadSearch(h.ctx, h.db, &p); err == nil {
			t.Errorf("OutboxDeadSearch(%+v): no error", p)
		}
	}
}

func testInboxDeadSearch(t *testing.T, h *harness) {
	ids := []int64{h.park(t, "c1", "o-1/a"), h.park(t, "c1", "o-10/a"), h.park(t, "c2", "o-1/a")}
	p := parkParams("c2", "o-1")
	p.Topic = "billing"
	h.inTx(t, func(tx *sql.Tx) {
		_, err := h.s.InboxPark(h.ctx, tx, &p)
		noErr(t, "InboxPark", err)
	})
	var billing int64
	h.scan(t, "SELECT id FROM "+h.tables().InboxDead+" WHERE consumer = ? AND msg_key = ?", []any{"c2", "o-1"}, &billing)
	ids = append(ids, billing)
	search := func(p store.DeadSearchParams) []int64 {
		t.Helper()
		if p.Limit == 0 {
			p.Limit = 100
		}
		got, err := h.s.InboxDeadSearch(h.ctx, h.db, &p)
		noErr(t, "InboxDeadSearch", err)
		out := []int64{}
		for _, r := range got {
			out = append(out, r.ID)
		}
		return out
	}
	checkIDs(t, "all", search(store.DeadSearchParams{}), ids)
	checkIDs(t, "consumer c1", search(store.DeadSearchParams{Consumer: "c1"}), ids[:2])
	checkIDs(t, "topic billing", search(store.DeadSearchParams{Topic: "billing"}), ids[3:])
	checkIDs(t, "key o-1/a", search(store.DeadSearchParams{Match: store.KeyMatch{Key: "o-1/a"}}), []int64{ids[0], ids[2]})
	checkIDs(t, "c2 under o-1", search(store.DeadSearchParams{Consumer: "c2", Match: store.KeyMatch{Key: "o-1", Children: true}}),
		ids[2:])
	checkIDs(t, "ids", search(store.DeadSearchParams{IDs: []int64{ids[3], ids[1]}}), []int64{ids[1], ids[3]})
	checkIDs(t, "second page", search(store.DeadSearchParams{AfterID: ids[1], Limit: 1}), ids[2:3])
	got, err := h.s.InboxDeadSearch(h.ctx, h.db, &store.DeadSearchParams{IDs: ids[:1], Limit: 1})
	noErr(t, "InboxDeadSearch", err)
	if len(got) != 1 {
		t.Fatalf("InboxDeadSearch by id = %+v", got)
	}
	checkDead(t, got[0], parkParams("c1", "o-1/a"))
	if _, err := h.s.InboxDeadSearch(h.ctx, h.db, &store.DeadSearchParams{}); err == nil {
		t.Error("InboxDeadSearch with limit 0: no error")
	}
}

// Consumers are found in whichever inbox table holds their rows, each once, sorted.
func testInboxConsumers(t *testing.T, h *harness) {
	got, err := h.s.InboxConsumers(h.ctx, h.db)
	if err != nil || len(got) != 0 {
		t.Fatalf("InboxConsumers of empty tables = %q, %v", got, err)
	}
	h.record(t, "recorded", "k")
	h.record(t, "both", "k")
	h.recordFailure(t, h.db, "both", "k2", "x")
	h.recordFailure(t, h.db, "failing", "k", "x")
	h.park(t, "dead", "k")
	// A dead letter whose parked key is gone (removed by hand): the consumer is still found.
	h.exec(t, "DELETE FROM "+h.tables().Inbox+" WHERE consumer = ?", "dead")
	got, err = h.s.InboxConsumers(h.ctx, h.db)
	noErr(t, "InboxConsumers", err)
	checkStrings(t, "consumers", got, []string{"both", "dead", "failing", "recorded"})
}

func testInboxKeys(t *testing.T, h *harness) {
	for _, k := range []string{"a", "b", "b/1", "b/2", "b0", "c"} {
		h.record(t, "c", k)
	}
	h.record(t, "d", "a")
	h.park(t, "c", "b/3")
	list := func(p store.InboxKeysParams) []string {
		t.Helper()
		if p.Limit == 0 {
			p.Limit = 100
		}
		got, err := h.s.InboxKeys(h.ctx, h.db, &p)
		noErr(t, "InboxKeys", err)
		out := []string{}
		for _, r := range got {
			if r.Consumer != p.Consumer {
				t.Errorf("InboxKeys(%q) returned a key of %q", p.Consumer, r.Consumer)
			}
			if r.Parked != (r.Key == "b/3") {
				t.Errorf("key %q: parked %v", r.Key, r.Parked)
			}
			out = append(out, r.Key)
		}
		return out
	}
	checkStrings(t, "all", list(store.InboxKeysParams{Consumer: "c"}), []string{"a", "b", "b/1", "b/2", "b/3", "b0", "c"})
	checkStrings(t, "first page", list(store.InboxKeysParams{Consumer: "c", Limit: 3}), []string{"a", "b", "b/1"})
	checkStrings(t, "next page", list(store.InboxKeysParams{Consumer: "c", AfterKey: "b/1", Limit: 3}), []string{"b/2", "b/3", "b0"})
	checkStrings(t, "b and children", list(store.InboxKeysParams{Consumer: "c", Match: store.KeyMatch{Key: "b", Children: true}}),
		[]string{"b", "b/1", "b/2", "b/3"})
	checkStrings(t, "b exactly", list(store.InboxKeysParams{Consumer: "c", Match: store.KeyMatch{Key: "b"}}), []string{"b"})
	checkStrings(t, "consumer d", list(store.InboxKeysParams{Consumer: "d"}), []string{"a"})
	for _, p := range []store.InboxKeysParams{{Limit: 1}, {Consumer: "c"}, {Consumer: "c", Limit: 1001}} {
		if _, err := h.s.InboxKeys(h.ctx, h.db, &p); err == nil {
			t.Errorf("InboxKeys(%+v): no error", p)
		}
	}
}

// published_at is when the publish was recorded, at the batch's finish, not when its rows were claimed (the
// relay publishes between the two): a trace shows the broker's copy before the row's publish.
func testOutboxDeleteKeepTime(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("k"))
	clock, sleep := "now()", "SELECT pg_sleep(0.05)"
	if h.mysql {
		clock, sleep = "UTC_TIMESTAMP(6)", "DO SLEEP(0.05)"
	}
	parse := func(what, text string) time.Time {
		tm, err := time.Parse("2006-01-02 15:04:05.999999", text)
		noErr(t, "parse "+what, err)
		return tm
	}
	rows, tok := h.claimUnkeyed(t, 0, 10)
	if len(rows) != 1 {
		t.Fatalf("claimed %d rows, want 1", len(rows))
	}
	var text string
	h.scan(t, "SELECT "+h.timeText(clock), nil, &text)
	claimed := parse("the clock", text)
	h.exec(t, sleep) // the publishing
	if got := h.finish(t, &store.OutboxFinish{Token: tok, Published: refsOfRows(rows), Keep: true}); got.Published != 1 {
		t.Fatalf("finish published %d rows, want 1", got.Published)
	}
	h.scan(t, "SELECT "+h.timeText("published_at")+" FROM "+h.tables().OutboxPublished+" WHERE id = ?", []any{ids[0]}, &text)
	if d := parse("published_at", text).Sub(claimed); d < 50*time.Millisecond {
		t.Errorf("published_at is %v after the claim, want at least the 50ms the publishing took", d)
	}
}
