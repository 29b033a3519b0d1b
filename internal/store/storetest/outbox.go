package storetest

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// --- OutboxInsert ---

// No rows: nothing is written, and no statement runs (the transaction given is already over).
func testOutboxInsertNoRows(t *testing.T, h *harness) {
	tx := h.begin(t)
	rollback(t, tx)
	for _, notify := range []bool{false, true} {
		if err := h.s.OutboxInsert(h.ctx, tx, notify, nil); err != nil {
			t.Errorf("OutboxInsert(notify %v, no rows) on a finished transaction = %v, want nil", notify, err)
		}
	}
	if n := h.count(t, h.tables().Outbox, ""); n != 0 {
		t.Errorf("%d outbox rows, want 0", n)
	}
}

func testOutboxInsertOneRow(t *testing.T, h *harness) {
	in := store.OutboxInsertRow{Partition: -1, Topic: "orders.created", Key: "order-1", Tag: "created",
		Payload: []byte(`{"id":1}`)}
	before := time.Now()
	ids := h.insert(t, in)
	after := time.Now()
	r, ok := h.outboxRow(t, ids[0])
	if !ok {
		t.Fatal("inserted row not found")
	}
	checkRaw(t, "stored row", r, in)
	if r.Attempts != 0 || r.LastError.Valid {
		t.Errorf("new row: attempts %d, last_error %+v; want 0, NULL", r.Attempts, r.LastError)
	}
	within(t, "new row's available_at - now", r.DueIn, -time.Minute, time.Second)
	within(t, "new row's age", r.Age, -time.Second, time.Minute)

	got := h.claim(t, 0, 10)
	if len(got) != 1 {
		t.Fatalf("claimed %d rows, want 1", len(got))
	}
	checkRow(t, "claimed row", got[0], in)
	if got[0].ID != ids[0] || got[0].Attempts != 0 {
		t.Errorf("claimed row id %d attempts %d, want id %d attempts 0", got[0].ID, got[0].Attempts, ids[0])
	}
	recent(t, "claimed row's CreatedAt", got[0].CreatedAt, before, after)
}

// Several rows go in in one call, their ids ascending in the order given.
func testOutboxInsertManyRows(t *testing.T, h *harness) {
	in := []store.OutboxInsertRow{
		unkeyed("a"),
		{Partition: 7, Topic: "payments", Key: "b", Tag: "t1", ShardingKey: "customer-1", Payload: []byte("pb")},
		unkeyed("c"),
		{Partition: 63, Topic: "orders", Key: "d", ShardingKey: "customer-2", Payload: []byte("pd"),
			Headers: []byte(`{"h":"v"}`)},
		keyed(0, "customer-3", "e"),
	}
	ids := h.insert(t, in...)
	for i, id := range ids {
		r, ok := h.outboxRow(t, id)
		if !ok {
			t.Fatalf("row %d not found", id)
		}
		checkRaw(t, "row "+in[i].Key, r, in[i])
	}
}

// Headers are NULL when nil, a JSON document otherwise, and come back as they went in.
func testOutboxInsertHeaders(t *testing.T, h *harness) {
	in := []store.OutboxInsertRow{unkeyed("none"), unkeyed("some"), unkeyed("empty object")}
	in[1].Headers = []byte(`{"b":"x y","a":"1","ü":"é \"quoted\" \\ 🙂"}`)
	in[2].Headers = []byte(`{}`)
	ids := h.insert(t, in...)
	for i, id := range ids {
		r, _ := h.outboxRow(t, id)
		checkRaw(t, "row "+in[i].Key, r, in[i])
	}
	got := h.claim(t, 0, 10)
	if len(got) != len(in) {
		t.Fatalf("claimed %d rows, want %d", len(got), len(in))
	}
	for i := range got {
		checkRow(t, "claimed row "+in[i].Key, got[i], in[i])
	}
	if got[0].Headers != nil {
		t.Errorf("claimed headers of a row without headers = %q, want nil", got[0].Headers)
	}
}

// Payloads are bytes: empty stays empty (never NULL, read back non-nil), binary comes back byte for byte.
func testOutboxInsertPayload(t *testing.T, h *harness) {
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(i * 7)
	}
	in := []store.OutboxInsertRow{unkeyed("nil"), unkeyed("empty"), unkeyed("binary"), unkeyed("big")}
	in[0].Payload = nil
	in[1].Payload = []byte{}
	in[2].Payload = []byte{0, 1, 0xff, 0xfe, '\'', '\\', 0, '"', 0x80}
	in[3].Payload = big
	ids := h.insert(t, in...)
	if n := h.count(t, h.tables().Outbox, "payload IS NOT NULL AND OCTET_LENGTH(payload) = 0"); n != 2 {
		t.Errorf("%d rows with an empty, non-NULL payload, want 2", n)
	}
	got := h.claim(t, 0, 10)
	checkIDs(t, "claimed", rowIDs(got), ids)
	for i := range got {
		checkRow(t, "claimed row "+in[i].Key, got[i], in[i])
	}
}

// DeliverAt sets available_at (whatever the time zone of the time.Time); a future row is not due.
func testOutboxInsertDeliverAt(t *testing.T, h *harness) {
	now := time.Now()
	in := []store.OutboxInsertRow{unkeyed("now"), unkeyed("future"), unkeyed("past")}
	in[1].DeliverAt = now.Add(time.Hour).In(time.FixedZone("UTC-7", -7*3600))
	in[2].DeliverAt = now.Add(-time.Hour).In(time.FixedZone("UTC+5:30", 5*3600+1800))
	ids := h.insert(t, in...)
	future, _ := h.outboxRow(t, ids[1])
	within(t, "future row's available_at - now", future.DueIn, time.Hour-time.Minute, time.Hour+time.Second)
	past, _ := h.outboxRow(t, ids[2])
	within(t, "past row's available_at - now", past.DueIn, -time.Hour-time.Minute, -time.Hour+time.Second)
	within(t, "delayed row's age", future.Age, -time.Second, time.Minute)
	checkIDs(t, "claimed", rowIDs(h.claim(t, 0, 10)), []int64{ids[0], ids[2]})
}

// notify=true sends a NOTIFY on PostgreSQL in the same statement and is ignored on MySQL: either way the rows
// are inserted, in a transaction (committed or rolled back with it) or outside one.
func testOutboxInsertNotify(t *testing.T, h *harness) {
	tx := h.begin(t)
	noErr(t, "OutboxInsert with notify in a transaction", h.s.OutboxInsert(h.ctx, tx, true,
		[]store.OutboxInsertRow{unkeyed("a"), keyed(3, "s", "b")}))
	commit(t, tx)
	noErr(t, "OutboxInsert with notify on the pool", h.s.OutboxInsert(h.ctx, h.db, true,
		[]store.OutboxInsertRow{unkeyed("c")}))
	tx = h.begin(t)
	noErr(t, "OutboxInsert with notify in a transaction", h.s.OutboxInsert(h.ctx, tx, true,
		[]store.OutboxInsertRow{unkeyed("rolled back")}))
	rollback(t, tx)
	ids := h.newIDs(t)
	if len(ids) != 3 {
		t.Fatalf("%d rows inserted, want 3", len(ids))
	}
	for i, key := range []string{"a", "b", "c"} {
		r, _ := h.outboxRow(t, ids[i])
		if r.Key != key {
			t.Errorf("row %d has key %q, want %q", ids[i], r.Key, key)
		}
	}
}

// --- OutboxPrepareConn ---

// isolation reads the isolation level of the session's transactions as "read committed" and the like.
func (h *harness) isolation(t *testing.T, db store.DBTX) string {
	t.Helper()
	var s string
	q := "SHOW transaction_isolation"
	if h.mysql {
		q = "SELECT @@tx_isolation" // MariaDB; MySQL 8 calls it transaction_isolation
		if err := db.QueryRowContext(h.ctx, "SELECT @@transaction_isolation").Scan(&s); err == nil {
			return strings.ToLower(strings.ReplaceAll(s, "-", " "))
		}
	}
	noErr(t, q, db.QueryRowContext(h.ctx, q).Scan(&s))
	return strings.ToLower(strings.ReplaceAll(s, "-", " "))
}

// Every later transaction of the session runs READ COMMITTED, even when the session's default was stricter.
func testOutboxPrepareConnIsolation(t *testing.T, h *harness) {
	c := h.conn(t)
	q := "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ"
	if h.mysql {
		q = "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"
	}
	_, err := c.ExecContext(h.ctx, q)
	noErr(t, q, err)
	if got := h.isolation(t, c); got != "repeatable read" {
		t.Fatalf("isolation before OutboxPrepareConn = %q, want repeatable read", got)
	}
	noErr(t, "OutboxPrepareConn", h.s.OutboxPrepareConn(h.ctx, c))
	for i := range 2 {
		tx, err := c.BeginTx(h.ctx, nil)
		noErr(t, "begin", err)
		if got := h.isolation(t, tx); got != "read committed" {
			t.Errorf("transaction %d after OutboxPrepareConn runs %q, want read committed", i+1, got)
		}
		noErr(t, "commit", tx.Commit())
	}
}

// --- OutboxKeyedPartitions ---

func testOutboxKeyedPartitionsEmpty(t *testing.T, h *harness) {
	got, err := h.s.OutboxKeyedPartitions(h.ctx, h.db)
	noErr(t, "OutboxKeyedPartitions", err)
	if len(got) != 0 {
		t.Errorf("empty outbox: partitions %v, want none", got)
	}
	h.insert(t, unkeyed("a"), unkeyed("b"))
	got, err = h.s.OutboxKeyedPartitions(h.ctx, h.db)
	noErr(t, "OutboxKeyedPartitions", err)
	if len(got) != 0 {
		t.Errorf("only unkeyed rows: partitions %v, want none", got)
	}
}

// Partitions that hold a keyed row, ascending, each once, whether their rows are due or not.
func testOutboxKeyedPartitionsAscending(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(5, "a", "1"), keyed(0, "b", "2"), keyed(63, "c", "3"), keyed(5, "d", "4"),
		unkeyed("5"), delayed(keyed(17, "e", "6"), time.Hour))
	got, err := h.s.OutboxKeyedPartitions(h.ctx, h.db)
	noErr(t, "OutboxKeyedPartitions", err)
	if want := []int{0, 5, 17, 63}; !slices.Equal(got, want) {
		t.Errorf("partitions %v, want %v", got, want)
	}
	h.exec(t, "DELETE FROM "+h.tables().Outbox+" WHERE id = ?", ids[1])
	got, err = h.s.OutboxKeyedPartitions(h.ctx, h.db)
	noErr(t, "OutboxKeyedPartitions", err)
	if want := []int{5, 17, 63}; !slices.Equal(got, want) {
		t.Errorf("after emptying partition 0: partitions %v, want %v", got, want)
	}
}

// --- OutboxLockPartitions / OutboxUnlockPartitions ---

func (h *harness) lock(t *testing.T, s store.Store, c *sql.Conn, parts ...int) []int {
	t.Helper()
	got, err := s.OutboxLockPartitions(h.ctx, c, parts)
	noErr(t, "OutboxLockPartitions", err)
	slices.Sort(got)
	return got
}

func checkParts(t *testing.T, what string, got, want []int) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: partitions %v, want %v", what, got, want)
	}
}

// A partition belongs to one connection at a time: another connection's try does not wait and gets only the
// partitions nobody holds.
func testOutboxLockExclusive(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	checkParts(t, "first connection", h.lock(t, h.s, c1, 1, 2, 3), []int{1, 2, 3})
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	got, err := h.s.OutboxLockPartitions(ctx, c2, []int{3, 2, 4})
	noErr(t, "OutboxLockPartitions on a second connection (must not wait)", err)
	checkParts(t, "second connection", got, []int{4})
	checkParts(t, "first connection again", h.lock(t, h.s, c1, 4), nil)
	got, err = h.s.OutboxLockPartitions(h.ctx, c2, nil)
	if err != nil || got != nil {
		t.Errorf("OutboxLockPartitions(no partitions) = %v, %v; want nil, nil", got, err)
	}
}

func testOutboxLockReleasedByUnlock(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	checkParts(t, "first connection", h.lock(t, h.s, c1, 1, 2), []int{1, 2})
	checkParts(t, "second connection", h.lock(t, h.s, c2, 1, 2), nil)
	noErr(t, "OutboxUnlockPartitions", h.s.OutboxUnlockPartitions(h.ctx, c1))
	checkParts(t, "second connection after the first unlocked", h.lock(t, h.s, c2, 1, 2), []int{1, 2})
	checkParts(t, "first connection after the second locked", h.lock(t, h.s, c1, 1, 2), nil)
	noErr(t, "OutboxUnlockPartitions", h.s.OutboxUnlockPartitions(h.ctx, c2))
	noErr(t, "OutboxUnlockPartitions holding nothing", h.s.OutboxUnlockPartitions(h.ctx, c2))
	checkParts(t, "first connection after the second unlocked", h.lock(t, h.s, c1, 1, 2), []int{1, 2})
}

// The locks belong to the session: a connection that is closed (discarded, never pooled) releases them.
func testOutboxLockReleasedByClose(t *testing.T, h *harness) {
	c1, c2 := h.conn(t), h.conn(t)
	checkParts(t, "first connection", h.lock(t, h.s, c1, 1, 2), []int{1, 2})
	checkParts(t, "second connection", h.lock(t, h.s, c2, 1, 2), nil)
	store.DiscardConn(c1)
	got := map[int]bool{}
	poll(t, "the partitions of a closed connection to be released", func() bool {
		for _, p := range h.lock(t, h.s, c2, 1, 2) {
			got[p] = true
		}
		return got[1] && got[2]
	})
}

// --- OutboxClaimKeyed ---

// Each partition's due rows in id order; rows of other partitions interleave without mixing in.
func testOutboxSelectKeyedOrder(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(1, "a", "a1"), keyed(2, "b", "b1"), keyed(1, "c", "c1"), keyed(2, "b", "b2"),
		keyed(1, "a", "a2"))
	rows := h.selectKeyed(t, []int{1, 2}, 10)
	got := byPartition(rows)
	checkIDs(t, "partition 1", got[1], []int64{ids[0], ids[2], ids[4]})
	checkIDs(t, "partition 2", got[2], []int64{ids[1], ids[3]})
	if len(got) != 2 {
		t.Errorf("rows of partitions %v, want 1 and 2 only", got)
	}
	checkIDs(t, "all, in id order", rowIDs(rows), ids)
}

// At most PerPartition rows of each partition: the first ones in id order; of those at most Limit, the lowest
// ids (so that each partition's rows stay a prefix of its due rows).
func testOutboxSelectKeyedLimit(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(1, "a", "a1"), keyed(2, "b", "b1"), keyed(1, "c", "c1"), keyed(2, "b", "b2"),
		keyed(1, "a", "a2"), keyed(2, "d", "d1"))
	got := byPartition(h.selectKeyed(t, []int{1, 2}, 2))
	checkIDs(t, "partition 1, 2 per partition", got[1], []int64{ids[0], ids[2]})
	checkIDs(t, "partition 2, 2 per partition", got[2], []int64{ids[1], ids[3]})
	got = byPartition(h.selectKeyed(t, []int{2, 1}, 1))
	checkIDs(t, "partition 1, 1 per partition", got[1], []int64{ids[0]})
	checkIDs(t, "partition 2, 1 per partition", got[2], []int64{ids[1]})
	rows, err := h.s.OutboxClaimKeyed(h.ctx, h.db, &store.OutboxClaim{Token: h.nextToken(), Lease: testLease, Limit: 3,
		Parts: []int{1, 2}, PerPartition: 10})
	noErr(t, "OutboxClaimKeyed", err)
	checkIDs(t, "limit 3", rowIDs(rows), ids[:3])
}

// Only the partitions asked for, never unkeyed rows (not even when -1 is asked for).
func testOutboxSelectKeyedOnlyParts(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(1, "a", "a1"), unkeyed("u1"), keyed(2, "b", "b1"), keyed(3, "c", "c1"))
	got := byPartition(h.selectKeyed(t, []int{1, 3}, 10))
	if len(got) != 2 {
		t.Errorf("rows of partitions %v, want 1 and 3 only", got)
	}
	checkIDs(t, "partition 1", got[1], []int64{ids[0]})
	checkIDs(t, "partition 3", got[3], []int64{ids[3]})
	checkIDs(t, "partition -1", rowIDs(h.selectKeyed(t, []int{-1}, 10)), nil)
	checkIDs(t, "an empty partition", rowIDs(h.selectKeyed(t, []int{9}, 10)), nil)
	rows, err := h.s.OutboxClaimKeyed(h.ctx, h.db, &store.OutboxClaim{Token: 1, Lease: testLease, Limit: 10, PerPartition: 10})
	if err != nil || rows != nil {
		t.Errorf("OutboxClaimKeyed(no partitions) = %v, %v; want nil, nil", rows, err)
	}
}

// A row in backoff holds back the later rows of its sharding key, not the other keys of its partition; once
// it is due again its key flows in id order.
func testOutboxSelectKeyedBackoff(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(3, "A", "a1"), keyed(3, "B", "b1"), keyed(3, "A", "a2"), keyed(3, "B", "b2"))
	h.retryRows(t, retry(ids[0], 3, time.Hour, "x"))
	a3 := h.insert(t, keyed(3, "A", "a3"))[0]
	checkIDs(t, "with a1 in backoff", rowIDs(h.selectKeyed(t, []int{3}, 10)), []int64{ids[1], ids[3]})
	h.retryRows(t, retry(ids[0], 3, 0, "y"))
	rows := h.selectKeyed(t, []int{3}, 10)
	checkIDs(t, "with a1 due again", rowIDs(rows), append(ids, a3))
	if len(rows) > 0 && rows[0].Attempts != 2 {
		t.Errorf("a1 attempts %d, want 2", rows[0].Attempts)
	}
}

// A row delayed by DeliverAt holds back its key the same way; an earlier due row of the key is still returned,
// and a DeliverAt in the past holds back nothing.
func testOutboxSelectKeyedDelayed(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(4, "A", "a1"), delayed(keyed(4, "A", "a2"), time.Hour), keyed(4, "A", "a3"),
		keyed(4, "B", "b1"), delayed(keyed(4, "C", "c1"), -time.Minute), keyed(4, "C", "c2"))
	checkIDs(t, "selected", rowIDs(h.selectKeyed(t, []int{4}, 10)), []int64{ids[0], ids[3], ids[4], ids[5]})
}

// Sharding keys compare byte for byte: "k" in backoff holds back neither "K" nor "k ".
func testOutboxSelectKeyedByteExact(t *testing.T, h *harness) {
	ids := h.insert(t, delayed(keyed(5, "k", "1"), time.Hour), keyed(5, "K", "2"), keyed(5, "k ", "3"),
		keyed(5, "k", "4"), keyed(5, "k  ", "5"))
	checkIDs(t, "selected", rowIDs(h.selectKeyed(t, []int{5}, 10)), []int64{ids[1], ids[2], ids[4]})
}

func testOutboxSelectKeyedFields(t *testing.T, h *harness) {
	in := store.OutboxInsertRow{Partition: 12, Topic: "payments", Key: "pay-1", Tag: "captured",
		ShardingKey: "customer-9", Payload: []byte{0, 'x', 0xff}, Headers: []byte(`{"trace":"abc"}`)}
	in2 := keyed(12, "customer-8", "pay-2")
	in2.Payload = nil
	before := time.Now()
	ids := h.insert(t, in, in2)
	after := time.Now()
	rows := h.selectKeyed(t, []int{12}, 10)
	checkIDs(t, "selected", rowIDs(rows), ids)
	if len(rows) != 2 {
		return
	}
	checkRow(t, "selected row", rows[0], in)
	checkRow(t, "selected row without payload", rows[1], in2)
	if rows[0].Attempts != 0 {
		t.Errorf("attempts %d, want 0", rows[0].Attempts)
	}
	recent(t, "CreatedAt", rows[0].CreatedAt, before, after)
}

// A claimed row is leased: its claim_token is the claim's, its available_at is now + Lease, and no other claim
// takes it until the lease ends; then the next claim takes it over with its own token.
func testOutboxClaimKeyedLeases(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(7, "A", "a1"), keyed(7, "B", "b1"))
	rows, tok := h.claimKeyed(t, []int{7}, 10)
	checkIDs(t, "first claim", rowIDs(rows), ids)
	checkLeased(t, h, tok, testLease, ids...)
	again, _ := h.claimKeyed(t, []int{7}, 10)
	checkIDs(t, "second claim while leased", rowIDs(again), nil)
	h.setAgo(t, h.tables().Outbox, "available_at", time.Millisecond, "id = ?", ids[1]) // b1's lease ends
	again, tok2 := h.claimKeyed(t, []int{7}, 10)
	checkIDs(t, "claim after b1's lease ended", rowIDs(again), ids[1:])
	checkLeased(t, h, tok2, testLease, ids[1])
}

// A leased row holds back every other row of its sharding key, earlier ones too (a row that committed out of id
// order while a later row of its key was being published), and nothing of other keys; rows in backoff or
// delayed hold back only the later rows of their key.
func testOutboxClaimKeyedLeaseHoldsBackKey(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(8, "A", "a1"), keyed(8, "A", "a2"), keyed(8, "A", "a3"), keyed(8, "B", "b1"))
	h.leaseIDs(t, ids[1])
	checkIDs(t, "with a2 leased", rowIDs(h.selectKeyed(t, []int{8}, 10)), ids[3:])
	h.setAgo(t, h.tables().Outbox, "available_at", time.Millisecond, "id = ?", ids[1]) // the lease ended
	checkIDs(t, "after a2's lease ended", rowIDs(h.selectKeyed(t, []int{8}, 10)), ids)
}

// Claims cut to the byte budget in id order: the rows whose payloads fit, the first row alone when TakeOne
// (however large), nothing when it does not fit without TakeOne. Rows past the budget stay unleased.
func testOutboxClaimKeyedBytes(t *testing.T, h *harness) {
	rows := make([]store.OutboxInsertRow, 4)
	for i := range rows {
		rows[i] = keyed(9, "k"+string(rune('0'+i)), "r"+string(rune('0'+i)))
		rows[i].Payload = make([]byte, 100*(i+1)) // 100, 200, 300, 400 bytes
	}
	ids := h.insert(t, rows...)
	claim := func(max int64, takeOne bool) []int64 {
		got, err := h.s.OutboxClaimKeyed(h.ctx, h.db, &store.OutboxClaim{Token: h.nextToken(), Lease: testLease,
			Limit: 10, Parts: []int{9}, PerPartition: 10, MaxBytes: max, TakeOne: takeOne})
		noErr(t, "OutboxClaimKeyed", err)
		h.release(t, h.tokens, got)
		return rowIDs(got)
	}
	checkClaimBytes(t, ids, claim)
}

func checkClaimBytes(t *testing.T, ids []int64, claim func(max int64, takeOne bool) []int64) {
	t.Helper()
	checkIDs(t, "budget 600", claim(600, true), ids[:3])
	checkIDs(t, "budget 599", claim(599, true), ids[:2])
	checkIDs(t, "budget 1000", claim(1000, false), ids)
	checkIDs(t, "budget 0 (none)", claim(0, false), ids)
	checkIDs(t, "budget 50, take one", claim(50, true), ids[:1])
	checkIDs(t, "budget 50", claim(50, false), nil)
}

// checkLeased fails unless rows ids are leased by tok until about now + lease.
func checkLeased(t *testing.T, h *harness, tok int64, lease time.Duration, ids ...int64) {
	t.Helper()
	for _, id := range ids {
		if got := h.leaseOf(t, id); got != tok {
			t.Errorf("row %d: claim_token %d, want %d", id, got, tok)
		}
		within(t, "leased row's lease end - now", h.leaseEnd(t, id), lease-time.Minute, lease+time.Second)
	}
}

// A claim of unkeyed rows changes no indexed column: the lease is in lease_until, available_at stays (on
// PostgreSQL that is what makes the update HOT); a keyed row's lease is its available_at.
func testOutboxClaimLeaseColumns(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("u"), keyed(2, "s", "k"))
	before, _ := h.outboxRow(t, ids[0])
	if rows, _ := h.claimUnkeyed(t, 0, 10); len(rows) != 1 {
		t.Fatalf("claimed %d unkeyed rows, want 1", len(rows))
	}
	if rows, _ := h.claimKeyed(t, []int{2}, 10); len(rows) != 1 {
		t.Fatalf("claimed %d keyed rows, want 1", len(rows))
	}
	after, _ := h.outboxRow(t, ids[0])
	if after.DueIn > 0 || after.DueIn < before.DueIn-time.Second {
		t.Errorf("leased unkeyed row: available_at moved (due in %v, was %v)", after.DueIn, before.DueIn)
	}
	var unkeyedUntil, keyedUntil sql.NullString
	h.scan(t, "SELECT lease_until FROM "+h.tables().Outbox+" WHERE id = ?", []any{ids[0]}, &unkeyedUntil)
	h.scan(t, "SELECT lease_until FROM "+h.tables().Outbox+" WHERE id = ?", []any{ids[1]}, &keyedUntil)
	if !unkeyedUntil.Valid || keyedUntil.Valid {
		t.Errorf("lease_until: unkeyed row %+v, keyed row %+v; want set, NULL", unkeyedUntil, keyedUntil)
	}
	if k, _ := h.outboxRow(t, ids[1]); k.DueIn < testLease-time.Minute {
		t.Errorf("leased keyed row due in %v, want about %v (its lease end)", k.DueIn, testLease)
	}
}

// --- OutboxClaimUnkeyed ---

func testOutboxClaimAfterLimit(t *testing.T, h *harness) {
	u := h.insert(t, unkeyed("0"), unkeyed("1"), unkeyed("2"), unkeyed("3"), unkeyed("4"))
	checkIDs(t, "after 0, limit 10", rowIDs(h.claim(t, 0, 10)), u)
	checkIDs(t, "after 0, limit 2", rowIDs(h.claim(t, 0, 2)), u[:2])
	checkIDs(t, "after the second, limit 2", rowIDs(h.claim(t, u[1], 2)), u[2:4])
	checkIDs(t, "after the third, limit 10", rowIDs(h.claim(t, u[2], 10)), u[3:])
	checkIDs(t, "after the last", rowIDs(h.claim(t, u[4], 10)), nil)
}

func testOutboxClaimNeverKeyed(t *testing.T, h *harness) {
	ids := h.insert(t, keyed(0, "a", "k0"), unkeyed("u1"), keyed(1, "b", "k2"), unkeyed("u3"), keyed(63, "c", "k4"))
	rows := h.claim(t, 0, 100)
	checkIDs(t, "claimed", rowIDs(rows), []int64{ids[1], ids[3]})
	for _, r := range rows {
		if r.Partition != -1 || r.ShardingKey != "" {
			t.Errorf("claimed row %d: partition %d, sharding key %q", r.ID, r.Partition, r.ShardingKey)
		}
	}
}

// Rows delayed or in backoff are not claimed, and unlike keyed rows they hold back nothing.
func testOutboxClaimNotDue(t *testing.T, h *harness) {
	u := h.insert(t, unkeyed("0"), delayed(unkeyed("1"), time.Hour), unkeyed("2"), unkeyed("3"))
	h.retryRows(t, retry(u[2], -1, time.Hour, "x"))
	checkIDs(t, "claimed", rowIDs(h.claim(t, 0, 10)), []int64{u[0], u[3]})
}

// FOR UPDATE SKIP LOCKED: a claim neither waits for nor takes the rows another transaction holds (another
// claim in flight); they come back when it ends.
func testOutboxClaimSkipLocked(t *testing.T, h *harness) {
	u := h.insert(t, unkeyed("0"), unkeyed("1"), unkeyed("2"), unkeyed("3"), unkeyed("4"))
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	tx, _ := h.relayTx(t)
	_, err := tx.ExecContext(ctx, h.db.Rebind("SELECT id FROM "+h.tables().Outbox+" WHERE part = -1 AND id IN (?, ?) FOR UPDATE"), u[0], u[1])
	noErr(t, "lock two rows", err)
	got, err := h.s.OutboxClaimUnkeyed(ctx, h.db, &store.OutboxClaim{Token: h.nextToken(), Lease: testLease, Limit: 10})
	noErr(t, "claim (must not wait)", err)
	checkIDs(t, "claim beside the locks", rowIDs(got), u[2:])
	again, _ := h.claimUnkeyed(t, 0, 10)
	checkIDs(t, "claim with everything locked or leased", rowIDs(again), nil)
	noErr(t, "rollback", tx.Rollback())
	again, _ = h.claimUnkeyed(t, 0, 10)
	checkIDs(t, "claim after the locks ended", rowIDs(again), u[:2])
}

// A claimed row is leased (token, available_at now + Lease) and skipped by later claims until its lease ends.
func testOutboxClaimUnkeyedLeases(t *testing.T, h *harness) {
	u := h.insert(t, unkeyed("0"), unkeyed("1"))
	rows, tok := h.claimUnkeyed(t, 0, 10)
	checkIDs(t, "first claim", rowIDs(rows), u)
	checkLeased(t, h, tok, testLease, u...)
	again, _ := h.claimUnkeyed(t, 0, 10)
	checkIDs(t, "second claim while leased", rowIDs(again), nil)
	h.setAgo(t, h.tables().Outbox, "lease_until", time.Millisecond, "id = ?", u[0]) // its lease ends
	again, tok2 := h.claimUnkeyed(t, 0, 10)
	checkIDs(t, "claim after the lease of the first ended", rowIDs(again), u[:1])
	checkLeased(t, h, tok2, testLease, u[0])
}

func testOutboxClaimUnkeyedBytes(t *testing.T, h *harness) {
	rows := make([]store.OutboxInsertRow, 4)
	for i := range rows {
		rows[i] = unkeyed("r" + string(rune('0'+i)))
		rows[i].Payload = make([]byte, 100*(i+1))
	}
	ids := h.insert(t, rows...)
	checkClaimBytes(t, ids, func(max int64, takeOne bool) []int64 {
		got, err := h.s.OutboxClaimUnkeyed(h.ctx, h.db, &store.OutboxClaim{Token: h.nextToken(), Lease: testLease,
			Limit: 10, MaxBytes: max, TakeOne: takeOne})
		noErr(t, "OutboxClaimUnkeyed", err)
		h.release(t, h.tokens, got)
		return rowIDs(got)
	})
}

// A claim's transaction is over when it returns: producers insert and other sessions change the claimed rows
// without waiting.
func testOutboxClaimCommits(t *testing.T, h *harness) {
	h.insert(t, unkeyed("a"), unkeyed("b"), keyed(0, "s", "c"))
	c := h.conn(t)
	noErr(t, "OutboxPrepareConn", h.s.OutboxPrepareConn(h.ctx, c))
	ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
	defer cancel()
	u, err := h.s.OutboxClaimUnkeyed(ctx, c, &store.OutboxClaim{Token: h.nextToken(), Lease: testLease, Limit: 10})
	noErr(t, "OutboxClaimUnkeyed", err)
	k, err := h.s.OutboxClaimKeyed(ctx, c, &store.OutboxClaim{Token: h.nextToken(), Lease: testLease, Limit: 10,
		Parts: []int{0}, PerPartition: 10})
	noErr(t, "OutboxClaimKeyed", err)
	if len(u) != 2 || len(k) != 1 {
		t.Fatalf("claimed %d unkeyed and %d keyed rows, want 2 and 1", len(u), len(k))
	}
	err = h.s.OutboxInsert(ctx, h.db, false, []store.OutboxInsertRow{unkeyed("d"), keyed(0, "s", "e")})
	if err != nil {
		t.Fatalf("insert after the claims: %v (blocked by a claim's locks?)", err)
	}
	if _, err := h.db.ExecContext(ctx, "UPDATE "+h.tables().Outbox+" SET attempts = attempts"); err != nil {
		t.Fatalf("update every row after the claims: %v (blocked by a claim's locks?)", err)
	}
}

// --- OutboxRenew ---

// Renewing moves the lease end of the token's rows whose lease has not ended; rows of other tokens and rows
// whose lease ended are left alone.
func testOutboxRenew(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("0"), keyed(1, "s", "1"), unkeyed("2"), unkeyed("3"))
	tok := h.leaseIDs(t, ids[0], ids[1], ids[2])
	other := h.leaseIDs(t, ids[3])
	h.setAgo(t, h.tables().Outbox, "lease_until", time.Millisecond, "id = ?", ids[2]) // its lease ends
	refs := []store.OutboxRowRef{ref(ids[0], -1), ref(ids[1], 1), ref(ids[2], -1), ref(ids[3], -1)}
	n, err := h.s.OutboxRenew(h.ctx, h.db, tok, refs, time.Hour)
	noErr(t, "OutboxRenew", err)
	if n != 2 {
		t.Errorf("OutboxRenew = %d, want 2 (the rows still leased by the token)", n)
	}
	checkLeased(t, h, tok, time.Hour, ids[0], ids[1])
	checkLeased(t, h, other, testLease, ids[3])
	if end := h.leaseEnd(t, ids[2]); end > 0 {
		t.Errorf("row whose lease ended renewed: lease ends in %v", end)
	}
	if n, err := h.s.OutboxRenew(h.ctx, h.db, tok, nil, time.Hour); err != nil || n != 0 {
		t.Errorf("OutboxRenew(no rows) = %d, %v", n, err)
	}
}

// --- OutboxFinish ---

func testOutboxDeleteCount(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("0"), keyed(4, "s", "1"), unkeyed("2"), keyed(4, "s", "3"))
	tok := h.leaseIDs(t, ids[0], ids[1])
	got := h.finish(t, &store.OutboxFinish{Token: tok, Published: []store.OutboxRowRef{ref(ids[0], -1), ref(ids[1], 4)}})
	if got.Published != 2 {
		t.Errorf("OutboxFinish deleted %d of 2 published rows", got.Published)
	}
	checkIDs(t, "left in the outbox", h.ids(t, h.tables().Outbox, ""), ids[2:])
	if c := h.count(t, h.tables().OutboxPublished, ""); c != 0 {
		t.Errorf("%d published rows without keep, want 0", c)
	}
	got = h.finish(t, &store.OutboxFinish{Token: tok, Published: []store.OutboxRowRef{ref(ids[0], -1), ref(ids[3]+100, -1)}})
	if got.Published != 0 {
		t.Errorf("OutboxFinish deleted %d rows that do not exist", got.Published)
	}
	if got := h.finish(t, &store.OutboxFinish{Token: tok, Keep: true}); got != (store.OutboxFinished{}) {
		t.Errorf("OutboxFinish(no rows) = %+v", got)
	}
	checkIDs(t, "left in the outbox", h.ids(t, h.tables().Outbox, ""), ids[2:])
}

// Keep moves the rows to the published table as they were, with the time of publishing.
func testOutboxDeleteKeep(t *testing.T, h *harness) {
	in := []store.OutboxInsertRow{unkeyed("0"), keyed(9, "s", "1"), unkeyed("2")}
	in[0].Tag, in[0].Headers = "t", []byte(`{"a":"b"}`)
	ids := h.insert(t, in...)
	h.retryRows(t, retry(ids[1], 9, 0, "x"))
	created := map[int64]string{}
	for _, id := range ids {
		r, _ := h.outboxRow(t, id)
		created[id] = r.CreatedAt
	}
	tok := h.leaseIDs(t, ids[0], ids[1])
	got := h.finish(t, &store.OutboxFinish{Token: tok, Keep: true, Published: []store.OutboxRowRef{ref(ids[0], -1), ref(ids[1], 9)}})
	if got.Published != 2 {
		t.Errorf("OutboxFinish with keep moved %d of 2 rows", got.Published)
	}
	checkIDs(t, "left in the outbox", h.ids(t, h.tables().Outbox, ""), ids[2:])
	checkIDs(t, "published", h.ids(t, h.tables().OutboxPublished, ""), ids[:2])
	for i, id := range ids[:2] {
		r, ok := h.publishedRow(t, id)
		if !ok {
			continue
		}
		checkRaw(t, "published row", r, in[i])
		if r.Attempts != i {
			t.Errorf("published row %d: attempts %d, want %d", id, r.Attempts, i)
		}
		if r.CreatedAt != created[id] {
			t.Errorf("published row %d: created_at %s, want %s", id, r.CreatedAt, created[id])
		}
		within(t, "published row's published_at age", r.PublishedAge, -time.Second, time.Minute)
	}
}

func testOutboxRetryBackoff(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("0"), unkeyed("1"), keyed(2, "s", "2"))
	h.retryRows(t, retry(ids[0], -1, time.Hour, "boom"), retry(ids[2], 2, 30*time.Minute, "bang"))
	r0, _ := h.outboxRow(t, ids[0])
	if r0.Attempts != 1 || r0.LastError.String != "boom" {
		t.Errorf("retried row: attempts %d, last_error %+v; want 1, boom", r0.Attempts, r0.LastError)
	}
	within(t, "retried row's available_at - now", r0.DueIn, time.Hour-time.Minute, time.Hour+time.Second)
	if tok := h.leaseOf(t, ids[0]); tok != 0 {
		t.Errorf("retried row still has claim_token %d", tok)
	}
	r2, _ := h.outboxRow(t, ids[2])
	if r2.Attempts != 1 || r2.LastError.String != "bang" {
		t.Errorf("retried keyed row: attempts %d, last_error %+v; want 1, bang", r2.Attempts, r2.LastError)
	}
	within(t, "retried keyed row's available_at - now", r2.DueIn, 29*time.Minute, 30*time.Minute+time.Second)
	r1, _ := h.outboxRow(t, ids[1])
	if r1.Attempts != 0 || r1.LastError.Valid {
		t.Errorf("row not retried: attempts %d, last_error %+v; want 0, NULL", r1.Attempts, r1.LastError)
	}
	checkIDs(t, "claimed with the first row in backoff", rowIDs(h.claim(t, 0, 10)), ids[1:2])
	checkIDs(t, "selected with the keyed row in backoff", rowIDs(h.selectKeyed(t, []int{2}, 10)), nil)

	h.retryRows(t, retry(ids[0], -1, 0, "again"))
	rows := h.claim(t, 0, 10)
	checkIDs(t, "claimed after a retry without delay", rowIDs(rows), ids[:2])
	if len(rows) > 0 && rows[0].Attempts != 2 {
		t.Errorf("claimed row retried twice: attempts %d, want 2", rows[0].Attempts)
	}
	r0, _ = h.outboxRow(t, ids[0])
	if r0.LastError.String != "again" {
		t.Errorf("last_error after the second retry = %+v, want again", r0.LastError)
	}
}

// The stored error is the error text without NUL bytes, invalid UTF-8 replaced, at most 2000 bytes cut on a
// UTF-8 boundary; other text, whatever the script, is kept as is.
func testOutboxRetryErrorText(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("0"), unkeyed("1"), unkeyed("2"), unkeyed("3"))
	long := "x" + strings.Repeat("é", 1500) // 3001 bytes; byte 2000 is inside an "é"
	h.retryRows(t, retry(ids[0], -1, 0, "a\x00b"), retry(ids[1], -1, 0, long), retry(ids[2], -1, 0, "消息发送失败 🙂 'q' \"d\" \\"),
		retry(ids[3], -1, 0, "bad \xff byte"))
	r, _ := h.outboxRow(t, ids[0])
	if r.LastError.String != "ab" {
		t.Errorf("error with a NUL byte stored as %q, want %q", r.LastError.String, "ab")
	}
	r, _ = h.outboxRow(t, ids[1])
	if s := r.LastError.String; len(s) > 2000 || len(s) < 1990 || !utf8.ValidString(s) || !strings.HasPrefix(long, s) {
		t.Errorf("long error stored as %d bytes (valid UTF-8 %v), want a prefix of at most 2000 bytes",
			len(s), utf8.ValidString(s))
	}
	r, _ = h.outboxRow(t, ids[2])
	if r.LastError.String != "消息发送失败 🙂 'q' \"d\" \\" {
		t.Errorf("error stored as %q", r.LastError.String)
	}
	r, _ = h.outboxRow(t, ids[3])
	if r.LastError.String != "bad \uFFFD byte" {
		t.Errorf("error with an invalid UTF-8 byte stored as %q, want it replaced by U+FFFD", r.LastError.String)
	}
}

func testOutboxBury(t *testing.T, h *harness) {
	in := []store.OutboxInsertRow{unkeyed("0"), keyed(6, "s", "1"), unkeyed("2")}
	in[0].Tag, in[0].Headers, in[0].Payload = "t", []byte(`{"a":"b"}`), []byte{0, 1, 2}
	ids := h.insert(t, in...)
	h.retryRows(t, retry(ids[1], 6, 0, "first"))
	claimed := append(h.claim(t, 0, 10), h.selectKeyed(t, []int{6}, 10)...)
	created := map[int64]time.Time{}
	for _, r := range claimed {
		created[r.ID] = r.CreatedAt
	}
	before := time.Now()
	h.buryRows(t, retry(ids[0], -1, time.Hour, "dead 0"), retry(ids[1], 6, 0, "dead 1"))
	after := time.Now()
	checkIDs(t, "left in the outbox", h.ids(t, h.tables().Outbox, ""), ids[2:])
	dead := h.deadList(t)
	checkIDs(t, "dead letters", deadIDs(dead), ids[:2])
	for i, d := range dead {
		checkRow(t, "dead letter", d.OutboxRow, in[i])
		if d.Attempts != i+1 || d.LastError != "dead "+string(rune('0'+i)) {
			t.Errorf("dead letter %d: attempts %d, last error %q; want %d, %q", d.ID, d.Attempts, d.LastError, i+1,
				"dead "+string(rune('0'+i)))
		}
		if !d.CreatedAt.Equal(created[d.ID]) {
			t.Errorf("dead letter %d: CreatedAt %v, want %v", d.ID, d.CreatedAt, created[d.ID])
		}
		recent(t, "DeadAt", d.DeadAt, before, after)
	}
}

// Released rows are due now with nothing counted; held rows wait HoldFor with claim_token -1, hold back the later
// rows of their key (not the earlier ones) and are what OutboxResume finds.
func testOutboxFinishReleaseHold(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("0"), keyed(3, "A", "a1"), keyed(3, "A", "a2"), keyed(3, "A", "a3"), unkeyed("4"))
	tok := h.leaseIDs(t, ids[0], ids[2], ids[4])
	got := h.finish(t, &store.OutboxFinish{Token: tok, Release: []store.OutboxRowRef{ref(ids[0], -1)},
		Hold: []store.OutboxRowRef{ref(ids[2], 3), ref(ids[4], -1)}, HoldFor: time.Hour})
	if got.Updated != 3 {
		t.Errorf("OutboxFinish updated %d of 3 rows", got.Updated)
	}
	r, _ := h.outboxRow(t, ids[0])
	if r.Attempts != 0 || r.LastError.Valid || h.leaseOf(t, ids[0]) != 0 {
		t.Errorf("released row: attempts %d, last error %+v, claim_token %d; want 0, NULL, NULL", r.Attempts,
			r.LastError, h.leaseOf(t, ids[0]))
	}
	within(t, "released row's available_at - now", r.DueIn, -time.Minute, time.Second)
	for _, id := range []int64{ids[2], ids[4]} {
		if tok := h.leaseOf(t, id); tok != -1 {
			t.Errorf("held row %d: claim_token %d, want -1", id, tok)
		}
		r, _ := h.outboxRow(t, id)
		within(t, "held row's available_at - now", r.DueIn, time.Hour-time.Minute, time.Hour+time.Second)
		if r.Attempts != 0 {
			t.Errorf("held row %d: attempts %d, want 0", id, r.Attempts)
		}
	}
	checkIDs(t, "claimed", rowIDs(h.claim(t, 0, 10)), ids[:1])
	checkIDs(t, "selected with a2 held", rowIDs(h.selectKeyed(t, []int{3}, 10)), ids[1:2])
}

// Every operation touches only rows the token still leases: a row another claim took over (its lease ended) or
// that was never leased is left as it is, and the counts leave it out.
func testOutboxFinishFenced(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("0"), unkeyed("1"), unkeyed("2"), unkeyed("3"), unkeyed("4"), unkeyed("5"))
	old := h.leaseIDs(t, ids...)
	newer := h.leaseIDs(t, ids[1], ids[3], ids[5]) // taken over after the old lease ended
	got := h.finish(t, &store.OutboxFinish{Token: old,
		Published: []store.OutboxRowRef{ref(ids[0], -1), ref(ids[1], -1)},
		Bury:      []store.OutboxRetryRow{retry(ids[2], -1, 0, "dead"), retry(ids[3], -1, 0, "dead")},
		Retry:     []store.OutboxRetryRow{retry(ids[4], -1, time.Hour, "x"), retry(ids[5], -1, time.Hour, "x")}})
	want := store.OutboxFinished{Published: 1, Buried: 1, Updated: 1}
	if got != want {
		t.Errorf("OutboxFinish = %+v, want %+v", got, want)
	}
	checkIDs(t, "left in the outbox", h.ids(t, h.tables().Outbox, ""), []int64{ids[1], ids[3], ids[4], ids[5]})
	checkIDs(t, "dead letters", deadIDs(h.deadList(t)), ids[2:3])
	for _, id := range []int64{ids[1], ids[3], ids[5]} {
		r, _ := h.outboxRow(t, id)
		if tok := h.leaseOf(t, id); tok != newer || r.Attempts != 0 {
			t.Errorf("row %d taken over: claim_token %d, attempts %d; want %d, 0", id, tok, r.Attempts, newer)
		}
	}
	free := h.insert(t, unkeyed("6"))[0]
	got = h.finish(t, &store.OutboxFinish{Token: old, Release: []store.OutboxRowRef{ref(free, -1)},
		Published: []store.OutboxRowRef{ref(free, -1)}})
	if got != (store.OutboxFinished{}) {
		t.Errorf("OutboxFinish of a row it never leased = %+v, want nothing", got)
	}
}

// --- OutboxResume ---

// Resume makes held rows of one topic due again, lowest ids first and at most limit; rows of other topics, rows
// in backoff and leased rows stay as they are.
func testOutboxResume(t *testing.T, h *harness) {
	in := []store.OutboxInsertRow{unkeyed("0"), keyed(2, "s", "1"), unkeyed("2"), unkeyed("3"), unkeyed("4")}
	in[3].Topic = "other"
	ids := h.insert(t, in...)
	tok := h.leaseIDs(t, ids[0], ids[1], ids[2], ids[3])
	h.finish(t, &store.OutboxFinish{Token: tok, Hold: []store.OutboxRowRef{ref(ids[0], -1), ref(ids[1], 2), ref(ids[2], -1), ref(ids[3], -1)},
		HoldFor: time.Hour})
	h.retryRows(t, retry(ids[4], -1, time.Hour, "x"))
	resume := func(limit int) int {
		n, err := h.s.OutboxResume(h.ctx, h.db, "orders", limit)
		noErr(t, "OutboxResume", err)
		return n
	}
	if n := resume(1); n != 1 {
		t.Errorf("OutboxResume(limit 1) = %d", n)
	}
	checkIDs(t, "claimed after resuming one", rowIDs(h.claim(t, 0, 10)), ids[:1])
	if n := resume(10); n != 2 {
		t.Errorf("OutboxResume(limit 10) = %d, want the 2 held rows left", n)
	}
	checkIDs(t, "claimed after resuming all", rowIDs(h.claim(t, 0, 10)), []int64{ids[0], ids[2]})
	checkIDs(t, "selected after resuming all", rowIDs(h.selectKeyed(t, []int{2}, 10)), ids[1:2])
	if tok := h.leaseOf(t, ids[3]); tok != -1 {
		t.Errorf("held row of another topic: claim_token %d, want -1", tok)
	}
	if n := resume(10); n != 0 {
		t.Errorf("OutboxResume with nothing held = %d", n)
	}
}

// --- OutboxPurgePublished ---

// publish inserts rows and moves them to the published table, published ago[i] ago.
func (h *harness) publish(t *testing.T, ago ...time.Duration) []int64 {
	t.Helper()
	var rows []store.OutboxInsertRow
	for i := range ago {
		rows = append(rows, unkeyed(string(rune('a'+i))))
	}
	ids := h.insert(t, rows...)
	var refs []store.OutboxRowRef
	for _, id := range ids {
		refs = append(refs, ref(id, -1))
	}
	h.deleteRows(t, true, refs...)
	for i, id := range ids {
		h.setAgo(t, h.tables().OutboxPublished, "published_at", ago[i], "id = ?", id)
	}
	return ids
}

func (h *harness) purgePublished(t *testing.T, olderThan time.Duration, limit int) int {
	t.Helper()
	n, err := h.s.OutboxPurgePublished(h.ctx, h.db, olderThan, limit)
	noErr(t, "OutboxPurgePublished", err)
	return n
}

func testOutboxPurgePublishedOlderThan(t *testing.T, h *harness) {
	ids := h.publish(t, 3*time.Hour, 2*time.Hour, time.Hour, 0)
	live := h.insert(t, unkeyed("live"))
	h.setAgo(t, h.tables().Outbox, "created_at", 5*time.Hour, "id = ?", live[0])
	if n := h.purgePublished(t, 90*time.Minute, 100); n != 2 {
		t.Errorf("purge older than 90m = %d, want 2", n)
	}
	checkIDs(t, "published rows left", h.ids(t, h.tables().OutboxPublished, ""), ids[2:])
	if n := h.purgePublished(t, 90*time.Minute, 100); n != 0 {
		t.Errorf("second purge older than 90m = %d, want 0", n)
	}
	checkIDs(t, "outbox rows", h.ids(t, h.tables().Outbox, ""), live)
}

// A limited purge takes the oldest first, whatever the ids.
func testOutboxPurgePublishedLimit(t *testing.T, h *harness) {
	ids := h.publish(t, time.Hour, 3*time.Hour, 2*time.Hour, 0)
	if n := h.purgePublished(t, 30*time.Minute, 1); n != 1 {
		t.Errorf("purge limit 1 = %d, want 1", n)
	}
	checkIDs(t, "after the first purge", h.ids(t, h.tables().OutboxPublished, ""), []int64{ids[0], ids[2], ids[3]})
	if n := h.purgePublished(t, 30*time.Minute, 1); n != 1 {
		t.Errorf("purge limit 1 = %d, want 1", n)
	}
	checkIDs(t, "after the second purge", h.ids(t, h.tables().OutboxPublished, ""), []int64{ids[0], ids[3]})
	if n := h.purgePublished(t, 30*time.Minute, 5); n != 1 {
		t.Errorf("purge limit 5 = %d, want 1", n)
	}
	checkIDs(t, "after the third purge", h.ids(t, h.tables().OutboxPublished, ""), ids[3:])
}

// --- OutboxDeadList ---

func testOutboxDeadListPaging(t *testing.T, h *harness) {
	ids := h.insert(t, unkeyed("0"), keyed(1, "s", "1"), unkeyed("2"), unkeyed("3"))
	var rr []store.OutboxRetryRow
	for i := len(ids) - 1; i >= 0; i-- { // buried in reverse: the list is still in id order
		rr = append(rr, retry(ids[i], []int{-1, 1, -1, -1}[i], 0, "x"))
	}
	h.buryRows(t, rr...)
	list := func(after int64, limit int) []int64 {
		rows, err := h.s.OutboxDeadList(h.ctx, h.db, after, limit)
		noErr(t, "OutboxDeadList", err)
		return deadIDs(rows)
	}
	checkIDs(t, "all", list(0, 10), ids)
	checkIDs(t, "first page", list(0, 2), ids[:2])
	checkIDs(t, "second page", list(ids[1], 2), ids[2:])
	checkIDs(t, "after the last", list(ids[3], 2), nil)
}

// Dead letters come back as they were buried: headers (or none), an empty payload, tag, sharding key, the
// original created_at.
func testOutboxDeadListFields(t *testing.T, h *harness) {
	in := []store.OutboxInsertRow{unkeyed("0"), keyed(2, "customer", "1")}
	in[0].Payload, in[0].Headers = nil, nil
	in[1].Tag, in[1].Headers = "tag", []byte(`{"x":"y","z":"1 2"}`)
	ids := h.insert(t, in...)
	claimed := append(h.claim(t, 0, 10), h.selectKeyed(t, []int{2}, 10)...)
	before := time.Now()
	h.buryRows(t, retry(ids[0], -1, 0, ""), retry(ids[1], 2, 0, "boom"))
	after := time.Now()
	dead := h.deadList(t)
	checkIDs(t, "dead letters", deadIDs(dead), ids)
	if len(dead) != 2 || len(claimed) != 2 {
		t.FailNow()
	}
	for i, d := range dead {
		checkRow(t, "dead letter", d.OutboxRow, in[i])
		if !d.CreatedAt.Equal(claimed[i].CreatedAt) {
			t.Errorf("dead letter %d: CreatedAt %v, want %v", d.ID, d.CreatedAt, claimed[i].CreatedAt)
		}
		recent(t, "DeadAt", d.DeadAt, before, after)
		recent(t, "CreatedAt", d.CreatedAt, before.Add(-time.Minute), after)
	}
	if dead[0].Headers != nil || dead[0].LastError != "" || dead[1].LastError != "boom" || dead[1].Attempts != 1 {
		t.Errorf("dead letters: headers %q, errors %q and %q, attempts %d", dead[0].Headers, dead[0].LastError,
			dead[1].LastError, dead[1].Attempts)
	}
}

// --- OutboxDeadRequeue ---

func (h *harness) requeue(t *testing.T, tx store.DBTX, ids ...int64) int64 {
	t.Helper()
	n, err := h.s.OutboxDeadRequeue(h.ctx, tx, ids)
	noErr(t, "OutboxDeadRequeue", err)
	return n
}

// Requeued dead letters are new outbox rows (new ids in the order of the dead ids, attempts 0, due now, created
// now) with the message as it was; they leave the dead-letter table. Ids that are not dead letters are
// ignored.
func testOutboxDeadRequeue(t *testing.T, h *harness) {
	in := []store.OutboxInsertRow{unkeyed("0"), keyed(8, "s", "1"), unkeyed("2")}
	in[0].Headers, in[0].Tag = []byte(`{"a":"1"}`), "t"
	live := h.insert(t, unkeyed("live"))[0]
	dead := h.bury(t, in...)
	h.setAgo(t, h.tables().OutboxDead, "created_at", time.Hour, "id = ?", dead[0])
	var n int64
	h.inTx(t, func(tx *sql.Tx) { n = h.requeue(t, tx, dead[1], dead[0], dead[2]+1000, live) })
	if n != 2 {
		t.Errorf("OutboxDeadRequeue of 2 dead letters (and 2 other ids) = %d", n)
	}
	checkIDs(t, "dead letters left", deadIDs(h.deadList(t)), dead[2:])
	fresh := h.newIDs(t)
	if len(fresh) != 2 {
		t.Fatalf("%d new outbox rows, want 2", len(fresh))
	}
	if fresh[0] <= dead[2] {
		t.Errorf("requeued rows have ids %v, want new ids above %d", fresh, dead[2])
	}
	for i, id := range fresh { // in the order of the dead ids
		r, _ := h.outboxRow(t, id)
		checkRaw(t, "requeued row", r, in[i])
		if r.Attempts != 0 || r.LastError.Valid {
			t.Errorf("requeued row %d: attempts %d, last_error %+v; want 0, NULL", id, r.Attempts, r.LastError)
		}
		within(t, "requeued row's available_at - now", r.DueIn, -time.Minute, time.Second)
		within(t, "requeued row's age", r.Age, -time.Second, time.Minute)
	}
	checkIDs(t, "claimed", rowIDs(h.claim(t, 0, 10)), []int64{live, fresh[0]})
	checkIDs(t, "selected", rowIDs(h.selectKeyed(t, []int{8}, 10)), fresh[1:])
	if n := h.requeue(t, h.db); n != 0 {
		t.Errorf("OutboxDeadRequeue(no ids) = %d", n)
	}
}

// Two requeues of the same dead letters at once: the second waits for the first and copies nothing, whatever
// the isolation level of the caller's transactions (under READ COMMITTED MySQL's INSERT ... SELECT reads the
// dead letters without locking them).
func testOutboxDeadRequeueConcurrent(t *testing.T, h *harness) {
	h.concurrentRequeue(t, sql.LevelDefault)
}

func testOutboxDeadRequeueConcurrentReadCommitted(t *testing.T, h *harness) {
	h.concurrentRequeue(t, sql.LevelReadCommitted)
}

func (h *harness) concurrentRequeue(t *testing.T, iso sql.IsolationLevel) {
	t.Helper()
	dead := h.bury(t, unkeyed("0"), unkeyed("1"))
	tx1, tx2 := h.beginIso(t, iso), h.beginIso(t, iso)
	if n := h.requeue(t, tx1, dead...); n != 2 {
		t.Errorf("first requeue = %d, want 2", n)
	}
	id := h.sessionID(t, tx2)
	type result struct {
		n   int64
		err error
	}
	ch := async(func() result {
		n, err := h.s.OutboxDeadRequeue(h.ctx, tx2, dead)
		return result{n, err}
	})
	h.waitBlocked(t, id)
	pending(t, "second requeue", ch)
	commit(t, tx1)
	res := await(t, "second requeue", ch)
	if res.err != nil || res.n != 0 {
		t.Errorf("second requeue = %d, %v; want 0, nil", res.n, res.err)
	}
	commit(t, tx2)
	if n := h.count(t, h.tables().Outbox, ""); n != 2 {
		t.Errorf("%d outbox rows after two requeues of 2 dead letters, want 2", n)
	}
	if n := h.count(t, h.tables().OutboxDead, ""); n != 0 {
		t.Errorf("%d dead letters left, want 0", n)
	}
}

// --- OutboxDeadDelete ---

func testOutboxDeadDelete(t *testing.T, h *harness) {
	dead := h.bury(t, unkeyed("0"), unkeyed("1"), keyed(3, "s", "2"))
	live := h.insert(t, unkeyed("live"))[0]
	n, err := h.s.OutboxDeadDelete(h.ctx, h.db, []int64{dead[0], dead[2], live, dead[2] + 1000})
	noErr(t, "OutboxDeadDelete", err)
	if n != 2 {
		t.Errorf("OutboxDeadDelete of 2 dead letters (and 2 other ids) = %d", n)
	}
	checkIDs(t, "dead letters left", deadIDs(h.deadList(t)), dead[1:2])
	checkIDs(t, "outbox rows", h.ids(t, h.tables().Outbox, ""), []int64{live})
	n, err = h.s.OutboxDeadDelete(h.ctx, h.db, dead[:1])
	if err != nil || n != 0 {
		t.Errorf("OutboxDeadDelete of a deleted dead letter = %d, %v; want 0, nil", n, err)
	}
	n, err = h.s.OutboxDeadDelete(h.ctx, h.db, nil)
	if err != nil || n != 0 {
		t.Errorf("OutboxDeadDelete(no ids) = %d, %v; want 0, nil", n, err)
	}
}

// --- OutboxListen ---

// pgx: a notification sent by a committed insert wakes Wait; a rolled back one or an insert without notify
// does not, and a Wait that ran out of time leaves the listener usable. lib/pq and MySQL: ErrNotifyUnsupported,
// and no connection is kept.
func testOutboxListen(t *testing.T, h *harness) {
	pool := h.db.DB.DB
	if h.db.Target.Driver != "pgx" {
		l, err := h.s.OutboxListen(h.ctx, pool)
		isErr(t, "OutboxListen", err, store.ErrNotifyUnsupported)
		if l != nil {
			t.Errorf("OutboxListen returned a listener with error %v", err)
		}
		if st := pool.Stats(); st.InUse != 0 {
			t.Errorf("%d connections in use after OutboxListen failed, want 0", st.InUse)
		}
		return
	}
	// A prefix of its own: PostgreSQL's channels are per database, and the tests' schemas share one.
	s := h.migrated(t, uniqueName("txbox_l"))
	l, err := s.OutboxListen(h.ctx, pool)
	noErr(t, "OutboxListen", err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			l.Close()
		}
	})
	listening := pool.Stats()
	if listening.InUse != 1 {
		t.Errorf("%d connections in use while listening, want 1", listening.InUse)
	}
	tx := h.begin(t)
	noErr(t, "OutboxInsert", s.OutboxInsert(h.ctx, tx, true, []store.OutboxInsertRow{unkeyed("rolled back")}))
	rollback(t, tx)
	noErr(t, "OutboxInsert", s.OutboxInsert(h.ctx, h.db, false, []store.OutboxInsertRow{unkeyed("no notify")}))
	short, cancel := context.WithTimeout(h.ctx, 300*time.Millisecond)
	defer cancel()
	if err := l.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait after a rolled back insert and one without notify = %v, want context.DeadlineExceeded", err)
	}
	tx = h.begin(t)
	noErr(t, "OutboxInsert", s.OutboxInsert(h.ctx, tx, true, []store.OutboxInsertRow{unkeyed("committed")}))
	commit(t, tx)
	wctx, wcancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer wcancel()
	noErr(t, "Wait after a committed insert with notify", l.Wait(wctx))
	pre := pool.Stats()
	l.Close()
	closed = true
	st := pool.Stats()
	if st.InUse != 0 || st.OpenConnections != pre.OpenConnections-1 {
		t.Errorf("after Close: %d connections open, %d in use; want %d, 0 (the listening connection closed, not pooled)",
			st.OpenConnections, st.InUse, pre.OpenConnections-1)
	}
}

// --- OutboxCheckSchema ---

func testOutboxCheckSchemaMigrated(t *testing.T, h *harness) {
	noErr(t, "OutboxCheckSchema", h.s.OutboxCheckSchema(h.ctx, h.db))
	if n := h.count(t, h.tables().Outbox, ""); n != 0 {
		t.Errorf("OutboxCheckSchema left %d rows", n)
	}
}

func testOutboxCheckSchemaUnmigrated(t *testing.T, h *harness) {
	isErr(t, "OutboxCheckSchema on an empty database", h.s.OutboxCheckSchema(h.ctx, h.db), dialect.ErrSchemaMissing)
}

// A missing table or column the Store reads is reported, not only a missing outbox table.
func testOutboxCheckSchemaTableMissing(t *testing.T, h *harness) {
	h.exec(t, "DROP TABLE "+h.tables().OutboxPublished)
	isErr(t, "OutboxCheckSchema without the published table", h.s.OutboxCheckSchema(h.ctx, h.db), dialect.ErrSchemaMissing)
	noErr(t, "InboxCheckSchema without the outbox's published table", h.s.InboxCheckSchema(h.ctx, h.db))
}

func testOutboxCheckSchemaColumnMissing(t *testing.T, h *harness) {
	h.exec(t, "ALTER TABLE "+h.tables().OutboxDead+" DROP COLUMN dead_at")
	isErr(t, "OutboxCheckSchema without outbox_dead.dead_at", h.s.OutboxCheckSchema(h.ctx, h.db), dialect.ErrSchemaMissing)
}
