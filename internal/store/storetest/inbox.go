package storetest

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// fp is a fingerprint: the SHA-256 of s.
func fp(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

func (h *harness) inboxClaim(t *testing.T, tx store.DBTX, p store.InboxClaimParams) store.InboxClaimResult {
	t.Helper()
	res, err := h.s.InboxClaim(h.ctx, tx, &p)
	noErr(t, "InboxClaim", err)
	return res
}

// record claims (consumer, key) with fingerprint fp(key) and commits.
func (h *harness) record(t *testing.T, consumer, key string) {
	t.Helper()
	h.inTx(t, func(tx *sql.Tx) {
		if res := h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: consumer, Key: key, Fingerprint: fp(key)}); !res.Inserted {
			t.Fatalf("InboxClaim(%s, %q) of a new key: %+v", consumer, key, res)
		}
	})
}

// parkParams are the dead letter of (consumer, key) the suite parks.
func parkParams(consumer, key string) store.InboxParkParams {
	return store.InboxParkParams{Consumer: consumer, Key: key, Fingerprint: fp(key), Payload: []byte("payload of " + key),
		Headers: []byte(`{"h":"` + key + `"}`), Topic: "orders", MessageID: "msg-" + key, Attempts: 3,
		LastError: "failed: " + key}
}

// park parks (consumer, key) with parkParams and returns the dead letter's id.
func (h *harness) park(t *testing.T, consumer, key string) int64 {
	t.Helper()
	p := parkParams(consumer, key)
	h.inTx(t, func(tx *sql.Tx) {
		ok, err := h.s.InboxPark(h.ctx, tx, &p)
		noErr(t, "InboxPark", err)
		if !ok {
			t.Fatalf("InboxPark(%s, %q) of a new key = false", consumer, key)
		}
	})
	var id int64
	h.scan(t, "SELECT id FROM "+h.tables().InboxDead+" WHERE consumer = ? AND msg_key = ?", []any{consumer, key}, &id)
	return id
}

func (h *harness) recordFailure(t *testing.T, db store.DBTX, consumer, key, msg string) int {
	t.Helper()
	n, err := h.s.InboxRecordFailure(h.ctx, db, &store.InboxRecordFailureParams{Consumer: consumer, Key: key, LastError: msg})
	noErr(t, "InboxRecordFailure", err)
	return n
}

// rawInbox is a row of the inbox table as plain SQL reads it.
type rawInbox struct {
	Fingerprint []byte
	Parked      bool
	Age         time.Duration // now - received_at
}

func (h *harness) inboxRow(t *testing.T, consumer, key string) (r rawInbox, found bool) {
	t.Helper()
	var age int64
	err := h.db.QueryRowContext(h.ctx, h.db.Rebind("SELECT fingerprint, parked, "+h.sinceMicros("received_at")+
		" FROM "+h.tables().Inbox+" WHERE consumer = ? AND msg_key = ?"), consumer, key).Scan(&r.Fingerprint, &r.Parked, &age)
	if err == sql.ErrNoRows {
		return r, false
	}
	noErr(t, "read inbox row", err)
	r.Age = time.Duration(age) * time.Microsecond
	return r, true
}

// inboxKeys lists consumer's recorded keys in byte order.
func (h *harness) inboxKeys(t *testing.T, consumer string) []string {
	t.Helper()
	var keys []string
	noErr(t, "list inbox keys", h.db.SelectContext(h.ctx, &keys, h.db.Rebind("SELECT msg_key FROM "+h.tables().Inbox+
		" WHERE consumer = ?"), consumer))
	slices.Sort(keys)
	return keys
}

// attemptsRow reads the attempts row of (consumer, key) with plain SQL.
func (h *harness) attemptsRow(t *testing.T, db store.DBTX, consumer, key string) (n int, lastErr string, age time.Duration, found bool) {
	t.Helper()
	var e sql.NullString
	var us int64
	err := db.QueryRowContext(h.ctx, h.db.Rebind("SELECT attempts, last_error, "+h.sinceMicros("updated_at")+" FROM "+
		h.tables().InboxAttempts+" WHERE consumer = ? AND msg_key = ?"), consumer, key).Scan(&n, &e, &us)
	if err == sql.ErrNoRows {
		return 0, "", 0, false
	}
	noErr(t, "read inbox attempts", err)
	return n, e.String, time.Duration(us) * time.Microsecond, true
}

func checkStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// checkDead compares a dead letter with the parameters it was parked with.
func checkDead(t *testing.T, got store.InboxDeadRow, want store.InboxParkParams) {
	t.Helper()
	if got.Consumer != want.Consumer || got.Key != want.Key || got.Topic != want.Topic ||
		got.MessageID != want.MessageID || got.Attempts != want.Attempts || got.LastError != want.LastError {
		t.Errorf("dead letter = {consumer %q key %q topic %q message id %q attempts %d error %q}, "+
			"want {consumer %q key %q topic %q message id %q attempts %d error %q}",
			got.Consumer, got.Key, got.Topic, got.MessageID, got.Attempts, got.LastError,
			want.Consumer, want.Key, want.Topic, want.MessageID, want.Attempts, want.LastError)
	}
	checkBytes(t, "dead letter fingerprint", got.Fingerprint, want.Fingerprint)
	payload := want.Payload
	if payload == nil {
		payload = []byte{}
	}
	checkBytes(t, "dead letter payload", got.Payload, payload)
	checkHeaders(t, "dead letter", got.Headers, want.Headers)
	if got.PayloadBytes != 0 || got.HeadersBytes != 0 {
		t.Errorf("dead letter stored whole reports cut sizes: payload %d, headers %d", got.PayloadBytes, got.HeadersBytes)
	}
}

func deadKeys(rows []store.InboxDeadRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Consumer+":"+r.Key)
	}
	return out
}

// --- InboxClaim ---

func testInboxClaimNew(t *testing.T, h *harness) {
	tx := h.begin(t)
	res := h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: "order-1", Fingerprint: fp("a")})
	if !res.Inserted || res.Parked || res.Fingerprint != nil {
		t.Errorf("InboxClaim of a new key = %+v, want Inserted only", res)
	}
	if _, found := h.inboxRow(t, "c", "order-1"); found {
		t.Error("the claim is visible before its transaction commits")
	}
	commit(t, tx)
	r, found := h.inboxRow(t, "c", "order-1")
	if !found {
		t.Fatal("claimed key not recorded after commit")
	}
	checkBytes(t, "recorded fingerprint", r.Fingerprint, fp("a"))
	if r.Parked {
		t.Error("claimed key recorded as parked")
	}
	within(t, "received_at age", r.Age, -time.Second, time.Minute)
}

// A key recorded by a committed transaction is reported with its stored fingerprint, and the transaction that
// found it goes on (a duplicate does not abort it).
func testInboxClaimDuplicate(t *testing.T, h *harness) {
	h.record(t, "c", "k")
	tx := h.begin(t)
	res := h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: "k", Fingerprint: fp("other")})
	if res.Inserted || res.Parked {
		t.Errorf("InboxClaim of a recorded key = %+v, want not inserted, not parked", res)
	}
	checkBytes(t, "reported fingerprint", res.Fingerprint, fp("k"))
	if res := h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: "k2", Fingerprint: fp("k2")}); !res.Inserted {
		t.Errorf("InboxClaim of a new key after a duplicate in the same transaction = %+v", res)
	}
	commit(t, tx)
	checkStrings(t, "recorded keys", h.inboxKeys(t, "c"), []string{"k", "k2"})
	r, _ := h.inboxRow(t, "c", "k")
	checkBytes(t, "fingerprint after the duplicate", r.Fingerprint, fp("k"))
}

func testInboxClaimParked(t *testing.T, h *harness) {
	h.park(t, "c", "k")
	res := h.inboxClaim(t, h.begin(t), store.InboxClaimParams{Consumer: "c", Key: "k", Fingerprint: fp("k")})
	if res.Inserted || !res.Parked {
		t.Errorf("InboxClaim of a parked key = %+v, want not inserted, parked", res)
	}
	checkBytes(t, "reported fingerprint", res.Fingerprint, fp("k"))
}

// Keys and consumers compare byte for byte: case and trailing spaces make different keys.
func testInboxClaimByteExact(t *testing.T, h *harness) {
	pairs := [][2]string{{"c", "k"}, {"c", "K"}, {"c", "k "}, {"c", "k  "}, {"c ", "k"}, {"C", "k"}}
	h.inTx(t, func(tx *sql.Tx) {
		for _, p := range pairs {
			if res := h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: p[0], Key: p[1], Fingerprint: fp(p[0] + "|" + p[1])}); !res.Inserted {
				t.Errorf("InboxClaim(%q, %q) = %+v, want inserted", p[0], p[1], res)
			}
		}
	})
	tx := h.begin(t)
	for _, p := range pairs {
		res := h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: p[0], Key: p[1], Fingerprint: fp("again")})
		if res.Inserted {
			t.Errorf("second InboxClaim(%q, %q) inserted", p[0], p[1])
		}
		checkBytes(t, "fingerprint of "+p[0]+"|"+p[1], res.Fingerprint, fp(p[0]+"|"+p[1]))
	}
}

// ClearAttempts deletes the key's attempts row in the claim's transaction, and only that row.
func testInboxClaimClearAttempts(t *testing.T, h *harness) {
	for _, p := range [][2]string{{"c", "k"}, {"c", "k2"}, {"c", "k3"}, {"c2", "k"}, {"c", "K"}} {
		h.recordFailure(t, h.db, p[0], p[1], "x")
	}
	tx := h.begin(t)
	h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: "k", Fingerprint: fp("k"), ClearAttempts: true})
	if _, _, _, found := h.attemptsRow(t, tx, "c", "k"); found {
		t.Error("attempts row still there in the claim's transaction")
	}
	commit(t, tx)
	if _, _, _, found := h.attemptsRow(t, h.db, "c", "k"); found {
		t.Error("attempts row still there after commit")
	}
	for _, p := range [][2]string{{"c2", "k"}, {"c", "K"}, {"c", "k2"}} {
		if _, _, _, found := h.attemptsRow(t, h.db, p[0], p[1]); !found {
			t.Errorf("attempts row of (%q, %q) deleted by a claim of (c, k)", p[0], p[1])
		}
	}
	h.inTx(t, func(tx *sql.Tx) {
		h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: "k2", Fingerprint: fp("k2")})
	})
	if _, _, _, found := h.attemptsRow(t, h.db, "c", "k2"); !found {
		t.Error("attempts row deleted by a claim without ClearAttempts")
	}
	tx = h.begin(t)
	h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: "k3", Fingerprint: fp("k3"), ClearAttempts: true})
	rollback(t, tx)
	if _, _, _, found := h.attemptsRow(t, h.db, "c", "k3"); !found {
		t.Error("attempts row deleted by a claim that rolled back")
	}
}

// ReceivedAt replaces the database clock, whatever its time zone.
func testInboxClaimReceivedAt(t *testing.T, h *harness) {
	at := time.Now().Add(-48 * time.Hour).In(time.FixedZone("UTC+9", 9*3600))
	h.inTx(t, func(tx *sql.Tx) {
		h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: "old", Fingerprint: fp("old"), ReceivedAt: at})
		h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: "new", Fingerprint: fp("new")})
	})
	r, _ := h.inboxRow(t, "c", "old")
	within(t, "age of a key received 48h ago", r.Age, 48*time.Hour-time.Second, 48*time.Hour+time.Minute)
	r, _ = h.inboxRow(t, "c", "new")
	within(t, "age of a key received now", r.Age, -time.Second, time.Minute)
}

type claimResult struct {
	res store.InboxClaimResult
	err error
}

// concurrentClaim claims (c, k) in tx1, then starts a claim of the same key in tx2, waits until tx2 is blocked
// on tx1's row, ends tx1 with end and returns tx2's result.
func (h *harness) concurrentClaim(t *testing.T, end func(*testing.T, *sql.Tx)) (*sql.Tx, claimResult) {
	t.Helper()
	tx1, tx2 := h.begin(t), h.begin(t)
	if res := h.inboxClaim(t, tx1, store.InboxClaimParams{Consumer: "c", Key: "k", Fingerprint: fp("first")}); !res.Inserted {
		t.Fatalf("first claim = %+v", res)
	}
	id := h.sessionID(t, tx2)
	ch := async(func() claimResult {
		res, err := h.s.InboxClaim(h.ctx, tx2, &store.InboxClaimParams{Consumer: "c", Key: "k", Fingerprint: fp("second")})
		return claimResult{res, err}
	})
	h.waitBlocked(t, id)
	pending(t, "second claim", ch)
	end(t, tx1)
	return tx2, await(t, "second claim", ch)
}

// A claim of a key another open transaction claimed waits for it: after its commit the key is a duplicate.
func testInboxClaimConcurrentCommit(t *testing.T, h *harness) {
	tx2, r := h.concurrentClaim(t, commit)
	if r.err != nil || r.res.Inserted || r.res.Parked {
		t.Fatalf("claim after the other committed = %+v, %v; want not inserted", r.res, r.err)
	}
	checkBytes(t, "reported fingerprint", r.res.Fingerprint, fp("first"))
	commit(t, tx2)
}

// ... and after its rollback the waiting claim records the key.
func testInboxClaimConcurrentRollback(t *testing.T, h *harness) {
	tx2, r := h.concurrentClaim(t, rollback)
	if r.err != nil || !r.res.Inserted {
		t.Fatalf("claim after the other rolled back = %+v, %v; want inserted", r.res, r.err)
	}
	commit(t, tx2)
	row, _ := h.inboxRow(t, "c", "k")
	checkBytes(t, "recorded fingerprint", row.Fingerprint, fp("second"))
}

// --- InboxRecordFailure ---

func testInboxRecordFailure(t *testing.T, h *harness) {
	for i := 1; i <= 3; i++ {
		h.inTx(t, func(tx *sql.Tx) {
			if n := h.recordFailure(t, tx, "c", "k", "error "+string(rune('0'+i))+" ✗"); n != i {
				t.Errorf("failure %d counted as %d", i, n)
			}
		})
	}
	n, msg, age, _ := h.attemptsRow(t, h.db, "c", "k")
	if n != 3 || msg != "error 3 ✗" {
		t.Errorf("attempts row = %d, %q; want 3, %q", n, msg, "error 3 ✗")
	}
	within(t, "updated_at age", age, -time.Second, time.Minute)
	tx := h.begin(t)
	if n := h.recordFailure(t, tx, "c", "k", "rolled back"); n != 4 {
		t.Errorf("fourth failure counted as %d", n)
	}
	rollback(t, tx)
	if n, msg, _, _ := h.attemptsRow(t, h.db, "c", "k"); n != 3 || msg != "error 3 ✗" {
		t.Errorf("attempts row after a rolled back failure = %d, %q; want 3, %q", n, msg, "error 3 ✗")
	}
	if n := h.recordFailure(t, h.db, "c", "K", "x"); n != 1 {
		t.Errorf("first failure of another key counted as %d", n)
	}
	if n := h.recordFailure(t, h.db, "c2", "k", "x"); n != 1 {
		t.Errorf("first failure of the key for another consumer counted as %d", n)
	}
}

// --- InboxPark ---

// A new key: recorded as parked, the dead letter written, the attempts row removed.
func testInboxParkNew(t *testing.T, h *harness) {
	h.recordFailure(t, h.db, "c", "k", "x")
	h.recordFailure(t, h.db, "c", "k", "y")
	p := parkParams("c", "k")
	bare := store.InboxParkParams{Consumer: "c", Key: "bare", Fingerprint: fp("bare"), Attempts: 1}
	before := time.Now()
	h.inTx(t, func(tx *sql.Tx) {
		for _, p := range []*store.InboxParkParams{&p, &bare} {
			ok, err := h.s.InboxPark(h.ctx, tx, p)
			noErr(t, "InboxPark", err)
			if !ok {
				t.Errorf("InboxPark(%q) of a new key = false", p.Key)
			}
		}
	})
	after := time.Now()
	r, found := h.inboxRow(t, "c", "k")
	if !found || !r.Parked {
		t.Fatalf("parked key: found %v, parked %v", found, r.Parked)
	}
	checkBytes(t, "parked key's fingerprint", r.Fingerprint, fp("k"))
	if _, _, _, found := h.attemptsRow(t, h.db, "c", "k"); found {
		t.Error("attempts row still there after InboxPark")
	}
	rows, err := h.s.InboxDeadList(h.ctx, h.db, &store.InboxDeadListParams{Consumer: "c", Limit: 10})
	noErr(t, "InboxDeadList", err)
	if len(rows) != 2 {
		t.Fatalf("%d dead letters, want 2", len(rows))
	}
	checkDead(t, rows[0], p)
	recent(t, "ParkedAt", rows[0].ParkedAt, before, after)
	checkDead(t, rows[1], bare)
	if rows[1].Headers != nil {
		t.Errorf("dead letter parked without headers has headers %q", rows[1].Headers)
	}
	ok, err := h.s.InboxPark(h.ctx, h.db, &p)
	if err != nil || ok {
		t.Errorf("second InboxPark of the key = %v, %v; want false, nil", ok, err)
	}
}

// A key recorded meanwhile: nothing changes, InboxPark reports false.
func testInboxParkRecorded(t *testing.T, h *harness) {
	h.record(t, "c", "k")
	h.recordFailure(t, h.db, "c", "k", "x")
	p := parkParams("c", "k")
	p.Fingerprint = fp("other")
	h.inTx(t, func(tx *sql.Tx) {
		ok, err := h.s.InboxPark(h.ctx, tx, &p)
		noErr(t, "InboxPark", err)
		if ok {
			t.Error("InboxPark of a recorded key = true")
		}
	})
	if n := h.count(t, h.tables().InboxDead, ""); n != 0 {
		t.Errorf("%d dead letters after parking a recorded key, want 0", n)
	}
	r, _ := h.inboxRow(t, "c", "k")
	if r.Parked {
		t.Error("recorded key became parked")
	}
	checkBytes(t, "recorded fingerprint", r.Fingerprint, fp("k"))
	if n, _, _, found := h.attemptsRow(t, h.db, "c", "k"); !found || n != 1 {
		t.Errorf("attempts row after InboxPark of a recorded key: found %v, count %d; want unchanged (1)", found, n)
	}
}

// With Minimal, only the sizes of payload and headers are stored.
func testInboxParkMinimal(t *testing.T, h *harness) {
	p := parkParams("c", "k")
	p.Minimal = true
	h.inTx(t, func(tx *sql.Tx) {
		ok, err := h.s.InboxPark(h.ctx, tx, &p)
		noErr(t, "InboxPark", err)
		if !ok {
			t.Fatal("InboxPark of a new key = false")
		}
	})
	rows, err := h.s.InboxDeadList(h.ctx, h.db, &store.InboxDeadListParams{Consumer: "c", Limit: 10})
	noErr(t, "InboxDeadList", err)
	if len(rows) != 1 {
		t.Fatalf("%d dead letters, want 1", len(rows))
	}
	r := rows[0]
	if len(r.Payload) != 0 || r.Headers != nil || r.PayloadBytes != int64(len(p.Payload)) || r.HeadersBytes != int64(len(p.Headers)) {
		t.Fatalf("minimal dead letter: %d payload bytes, headers %q, sizes %d and %d; want none, with sizes %d and %d",
			len(r.Payload), r.Headers, r.PayloadBytes, r.HeadersBytes, len(p.Payload), len(p.Headers))
	}
	checkBytes(t, "minimal dead letter fingerprint", r.Fingerprint, p.Fingerprint)
}

// A payload over MySQL's max_allowed_packet is cut to a prefix that fits, its size recorded; headers that fit
// are kept. PostgreSQL stores it whole.
func testInboxParkCutToFit(t *testing.T, h *harness) {
	var packet int
	if h.s.Dialect().Name() == "mysql" {
		h.scan(t, "SELECT @@max_allowed_packet", nil, &packet)
	}
	p := parkParams("c", "k")
	p.Payload = bytes.Repeat([]byte("0123456789'\\"), (max(packet, 16<<20)+1<<20)/12)
	h.inTx(t, func(tx *sql.Tx) {
		ok, err := h.s.InboxPark(h.ctx, tx, &p)
		noErr(t, "InboxPark", err)
		if !ok {
			t.Fatal("InboxPark of a new key = false")
		}
	})
	rows, err := h.s.InboxDeadList(h.ctx, h.db, &store.InboxDeadListParams{Consumer: "c", Limit: 10})
	noErr(t, "InboxDeadList", err)
	if len(rows) != 1 {
		t.Fatalf("%d dead letters, want 1", len(rows))
	}
	r := rows[0]
	checkHeaders(t, "cut dead letter", r.Headers, p.Headers)
	switch {
	case packet == 0 && (r.PayloadBytes != 0 || !bytes.Equal(r.Payload, p.Payload)):
		t.Fatalf("PostgreSQL: %d of %d payload bytes stored, size %d; want it whole", len(r.Payload), len(p.Payload), r.PayloadBytes)
	case packet > 0 && (r.PayloadBytes != int64(len(p.Payload)) || len(r.Payload) >= packet || !bytes.HasPrefix(p.Payload, r.Payload)):
		t.Fatalf("MySQL: %d of %d payload bytes stored, size %d; want a prefix under max_allowed_packet (%d) and the size",
			len(r.Payload), len(p.Payload), r.PayloadBytes, packet)
	}
}

// --- InboxDeadGet / InboxDeadDelete / InboxDeadList ---

func (h *harness) deadGet(t *testing.T, tx store.DBTX, consumer string, id int64, forUpdate bool) (store.InboxDeadRow, bool) {
	t.Helper()
	row, found, err := h.s.InboxDeadGet(h.ctx, tx, &store.InboxDeadGetParams{Consumer: consumer, ID: id, ForUpdate: forUpdate})
	noErr(t, "InboxDeadGet", err)
	return row, found
}

// A dead letter is found by id within its consumer only.
func testInboxDeadGet(t *testing.T, h *harness) {
	id1 := h.park(t, "c1", "k1")
	h.park(t, "c1", "k2")
	id3 := h.park(t, "c2", "k1")
	before := time.Now()
	row, found := h.deadGet(t, h.db, "c1", id1, false)
	if !found || row.ID != id1 {
		t.Fatalf("InboxDeadGet(c1, %d) = %+v, %v", id1, row, found)
	}
	checkDead(t, row, parkParams("c1", "k1"))
	recent(t, "ParkedAt", row.ParkedAt, before.Add(-time.Minute), time.Now())
	tx := h.begin(t)
	locked, found := h.deadGet(t, tx, "c1", id1, true)
	if !found {
		t.Error("InboxDeadGet with ForUpdate did not find the dead letter")
	}
	checkDead(t, locked, parkParams("c1", "k1"))
	rollback(t, tx)
	for _, c := range []struct {
		consumer string
		id       int64
	}{{"c2", id1}, {"c1", id3}, {"c1", id3 + 1000}, {"c3", id1}} {
		if row, found := h.deadGet(t, h.db, c.consumer, c.id, false); found {
			t.Errorf("InboxDeadGet(%s, %d) found %s:%s", c.consumer, c.id, row.Consumer, row.Key)
		}
	}
}

// ForUpdate locks the dead letter: a second locking read waits and then finds it gone; a plain read does not
// wait.
func testInboxDeadGetForUpdate(t *testing.T, h *harness) {
	id := h.park(t, "c", "k")
	tx1, tx2 := h.begin(t), h.begin(t)
	if _, found := h.deadGet(t, tx1, "c", id, true); !found {
		t.Fatal("first InboxDeadGet did not find the dead letter")
	}
	sid := h.sessionID(t, tx2)
	type result struct {
		found bool
		err   error
	}
	ch := async(func() result {
		_, found, err := h.s.InboxDeadGet(h.ctx, tx2, &store.InboxDeadGetParams{Consumer: "c", ID: id, ForUpdate: true})
		return result{found, err}
	})
	h.waitBlocked(t, sid)
	pending(t, "second InboxDeadGet with ForUpdate", ch)
	if _, found := h.deadGet(t, h.db, "c", id, false); !found {
		t.Error("plain InboxDeadGet did not find a locked dead letter")
	}
	ok, err := h.s.InboxDeadDelete(h.ctx, tx1, &store.InboxDeadGetParams{Consumer: "c", ID: id})
	noErr(t, "InboxDeadDelete", err)
	if !ok {
		t.Error("InboxDeadDelete of the locked dead letter = false")
	}
	commit(t, tx1)
	res := await(t, "second InboxDeadGet", ch)
	if res.err != nil || res.found {
		t.Errorf("second InboxDeadGet after the first deleted it = found %v, %v; want not found", res.found, res.err)
	}
}

func testInboxDeadDelete(t *testing.T, h *harness) {
	id1 := h.park(t, "c1", "k")
	id2 := h.park(t, "c2", "k")
	del := func(consumer string, id int64) bool {
		ok, err := h.s.InboxDeadDelete(h.ctx, h.db, &store.InboxDeadGetParams{Consumer: consumer, ID: id})
		noErr(t, "InboxDeadDelete", err)
		return ok
	}
	if del("c2", id1) {
		t.Error("InboxDeadDelete of another consumer's dead letter = true")
	}
	if !del("c1", id1) {
		t.Error("InboxDeadDelete = false")
	}
	if del("c1", id1) {
		t.Error("second InboxDeadDelete = true")
	}
	checkIDs(t, "dead letters left", h.ids(t, h.tables().InboxDead, ""), []int64{id2})
	if r, _ := h.inboxRow(t, "c1", "k"); !r.Parked {
		t.Error("InboxDeadDelete changed the parked record of the key")
	}
}

func (h *harness) deadListKeys(t *testing.T, p store.InboxDeadListParams) []string {
	t.Helper()
	rows, err := h.s.InboxDeadList(h.ctx, h.db, &p)
	noErr(t, "InboxDeadList", err)
	for i := 1; i < len(rows); i++ {
		if rows[i].ID <= rows[i-1].ID {
			t.Errorf("InboxDeadList out of id order: %d after %d", rows[i].ID, rows[i-1].ID)
		}
	}
	return deadKeys(rows)
}

func testInboxDeadListPaging(t *testing.T, h *harness) {
	var ids []int64
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		ids = append(ids, h.park(t, "c1", k))
		if k == "k2" {
			h.park(t, "c2", "k1")
		}
	}
	list := func(consumer string, after int64, limit int) []string {
		return h.deadListKeys(t, store.InboxDeadListParams{Consumer: consumer, AfterID: after, Limit: limit})
	}
	checkStrings(t, "all of c1", list("c1", 0, 10), []string{"c1:k1", "c1:k2", "c1:k3", "c1:k4"})
	checkStrings(t, "first page", list("c1", 0, 2), []string{"c1:k1", "c1:k2"})
	checkStrings(t, "second page", list("c1", ids[1], 2), []string{"c1:k3", "c1:k4"})
	checkStrings(t, "after the last", list("c1", ids[3], 2), nil)
	checkStrings(t, "c2", list("c2", 0, 10), []string{"c2:k1"})
	checkStrings(t, "a consumer without dead letters", list("c3", 0, 10), nil)
	rows, err := h.s.InboxDeadList(h.ctx, h.db, &store.InboxDeadListParams{Consumer: "c1", Limit: 1})
	noErr(t, "InboxDeadList", err)
	if len(rows) == 1 {
		checkDead(t, rows[0], parkParams("c1", "k1"))
	}
}

// Key filters on the exact key, within the consumer.
func testInboxDeadListKey(t *testing.T, h *harness) {
	id := h.park(t, "c1", "k")
	h.park(t, "c1", "K")
	h.park(t, "c1", "k ")
	h.park(t, "c2", "k")
	list := func(key string, after int64) []string {
		return h.deadListKeys(t, store.InboxDeadListParams{Consumer: "c1", Key: key, AfterID: after, Limit: 10})
	}
	checkStrings(t, "key k", list("k", 0), []string{"c1:k"})
	checkStrings(t, "key K", list("K", 0), []string{"c1:K"})
	checkStrings(t, "key 'k '", list("k ", 0), []string{"c1:k "})
	checkStrings(t, "key x", list("x", 0), nil)
	checkStrings(t, "key k after its id", list("k", id), nil)
}

// --- InboxSettle ---

func (h *harness) settle(t *testing.T, consumer, key string, fingerprint []byte) bool {
	t.Helper()
	var ok bool
	h.inTx(t, func(tx *sql.Tx) {
		var err error
		ok, err = h.s.InboxSettle(h.ctx, tx, &store.InboxKeyParams{Consumer: consumer, Key: key, Fingerprint: fingerprint})
		noErr(t, "InboxSettle", err)
	})
	return ok
}

// A parked key becomes an ordinary recorded key, received now; the dead letter is not touched.
func testInboxSettleParked(t *testing.T, h *harness) {
	h.park(t, "c", "k")
	h.setAgo(t, h.tables().Inbox, "received_at", 48*time.Hour, "consumer = ? AND msg_key = ?", "c", "k")
	if !h.settle(t, "c", "k", fp("other")) {
		t.Error("InboxSettle of a parked key = false")
	}
	r, _ := h.inboxRow(t, "c", "k")
	if r.Parked {
		t.Error("settled key still parked")
	}
	checkBytes(t, "settled key's fingerprint", r.Fingerprint, fp("k"))
	within(t, "settled key's received_at age", r.Age, -time.Second, time.Minute)
	if n := h.count(t, h.tables().InboxDead, ""); n != 1 {
		t.Errorf("%d dead letters after InboxSettle, want 1 (untouched)", n)
	}
	if h.settle(t, "c", "k", fp("k")) {
		t.Error("second InboxSettle = true")
	}
}

// A key recorded as processed is left as it is.
func testInboxSettleProcessed(t *testing.T, h *harness) {
	h.record(t, "c", "k")
	h.setAgo(t, h.tables().Inbox, "received_at", 48*time.Hour, "consumer = ? AND msg_key = ?", "c", "k")
	if h.settle(t, "c", "k", fp("other")) {
		t.Error("InboxSettle of a processed key = true")
	}
	r, _ := h.inboxRow(t, "c", "k")
	if r.Parked {
		t.Error("processed key became parked")
	}
	checkBytes(t, "fingerprint", r.Fingerprint, fp("k"))
	within(t, "received_at age", r.Age, 48*time.Hour-time.Second, 48*time.Hour+time.Minute)
}

// A key not recorded at all is recorded with the fingerprint given.
func testInboxSettleMissing(t *testing.T, h *harness) {
	h.record(t, "c2", "k")
	if !h.settle(t, "c", "k", fp("given")) {
		t.Error("InboxSettle of a missing key = false")
	}
	r, found := h.inboxRow(t, "c", "k")
	if !found || r.Parked {
		t.Fatalf("settled missing key: found %v, parked %v", found, r.Parked)
	}
	checkBytes(t, "fingerprint", r.Fingerprint, fp("given"))
	within(t, "received_at age", r.Age, -time.Second, time.Minute)
	r, _ = h.inboxRow(t, "c2", "k")
	checkBytes(t, "other consumer's fingerprint", r.Fingerprint, fp("k"))
}

// --- InboxUnpark ---

func testInboxUnpark(t *testing.T, h *harness) {
	h.park(t, "c", "parked")
	h.record(t, "c", "processed")
	h.park(t, "c2", "k")
	unpark := func(consumer, key string) bool {
		ok, err := h.s.InboxUnpark(h.ctx, h.db, &store.InboxKeyParams{Consumer: consumer, Key: key})
		noErr(t, "InboxUnpark", err)
		return ok
	}
	if unpark("c", "processed") {
		t.Error("InboxUnpark of a processed key = true")
	}
	if unpark("c", "missing") || unpark("c", "k") {
		t.Error("InboxUnpark of a key not recorded = true")
	}
	if !unpark("c", "parked") {
		t.Error("InboxUnpark of a parked key = false")
	}
	if unpark("c", "parked") {
		t.Error("second InboxUnpark = true")
	}
	checkStrings(t, "keys of c", h.inboxKeys(t, "c"), []string{"processed"})
	checkStrings(t, "keys of c2", h.inboxKeys(t, "c2"), []string{"k"})
	if n := h.count(t, h.tables().InboxDead, ""); n != 2 {
		t.Errorf("%d dead letters after InboxUnpark, want 2 (untouched)", n)
	}
}

// --- InboxPurge / InboxPurgeAttempts ---

// purge runs f in a READ COMMITTED transaction, as the inbox does.
func (h *harness) purge(t *testing.T, f func(db store.DBTX, p *store.InboxPurgeParams) (int, error), consumer string,
	olderThan time.Duration, limit int) int {
	t.Helper()
	tx, err := h.db.DB.DB.BeginTx(h.ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	noErr(t, "begin", err)
	defer func() { _ = tx.Rollback() }()
	n, err := f(tx, &store.InboxPurgeParams{Consumer: consumer, OlderThan: olderThan, Limit: limit})
	noErr(t, "purge", err)
	commit(t, tx)
	return n
}

func (h *harness) purgeKeys(db store.DBTX, p *store.InboxPurgeParams) (int, error) {
	return h.s.InboxPurge(h.ctx, db, p)
}

func (h *harness) purgeAttempts(db store.DBTX, p *store.InboxPurgeParams) (int, error) {
	return h.s.InboxPurgeAttempts(h.ctx, db, p)
}

// recordAgo records (consumer, key) as received ago.
func (h *harness) recordAgo(t *testing.T, consumer, key string, ago time.Duration) {
	t.Helper()
	h.inTx(t, func(tx *sql.Tx) {
		h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: consumer, Key: key, Fingerprint: fp(key),
			ReceivedAt: time.Now().Add(-ago)})
	})
}

func testInboxPurgeOlderThan(t *testing.T, h *harness) {
	h.recordAgo(t, "c1", "a", 3*time.Hour)
	h.recordAgo(t, "c1", "b", 2*time.Hour)
	h.recordAgo(t, "c1", "x", time.Hour)
	h.recordAgo(t, "c1", "fresh", 0)
	h.park(t, "c1", "parked")
	h.setAgo(t, h.tables().Inbox, "received_at", 5*time.Hour, "msg_key = ?", "parked")
	h.recordAgo(t, "c2", "a", 3*time.Hour)
	if n := h.purge(t, h.purgeKeys, "c1", 90*time.Minute, 100); n != 2 {
		t.Errorf("InboxPurge older than 90m = %d, want 2", n)
	}
	checkStrings(t, "keys of c1", h.inboxKeys(t, "c1"), []string{"fresh", "parked", "x"})
	checkStrings(t, "keys of c2", h.inboxKeys(t, "c2"), []string{"a"})
	if n := h.purge(t, h.purgeKeys, "c1", 90*time.Minute, 100); n != 0 {
		t.Errorf("second InboxPurge = %d, want 0", n)
	}
}

// A limited purge takes the oldest first, whatever the keys.
func testInboxPurgeLimit(t *testing.T, h *harness) {
	purgeLimitCase(t, h, "InboxPurge", h.recordAgo, h.purgeKeys, h.inboxKeys)
}

// purgeLimitCase: rows recorded 1h, 3h, 2h and 0h ago; purges of limit 1 older than 30m take 3h, then 2h; one
// of limit 5 takes the last old one and leaves the fresh one.
func purgeLimitCase(t *testing.T, h *harness, what string, record func(*testing.T, string, string, time.Duration),
	purge func(store.DBTX, *store.InboxPurgeParams) (int, error), list func(*testing.T, string) []string) {
	record(t, "c", "a", time.Hour)
	record(t, "c", "b", 3*time.Hour)
	record(t, "c", "c", 2*time.Hour)
	record(t, "c", "fresh", 0)
	for i, want := range [][]string{{"a", "c", "fresh"}, {"a", "fresh"}} {
		if n := h.purge(t, purge, "c", 30*time.Minute, 1); n != 1 {
			t.Errorf("%s limit 1 = %d, want 1", what, n)
		}
		checkStrings(t, fmt.Sprintf("rows after purge %d", i+1), list(t, "c"), want)
	}
	if n := h.purge(t, purge, "c", 30*time.Minute, 5); n != 1 {
		t.Errorf("%s limit 5 = %d, want 1", what, n)
	}
	checkStrings(t, "rows after the last purge", list(t, "c"), []string{"fresh"})
}

// attemptKeys lists consumer's attempts rows' keys in byte order.
func (h *harness) attemptKeys(t *testing.T, consumer string) []string {
	t.Helper()
	var keys []string
	noErr(t, "list attempts", h.db.SelectContext(h.ctx, &keys, h.db.Rebind("SELECT msg_key FROM "+
		h.tables().InboxAttempts+" WHERE consumer = ?"), consumer))
	slices.Sort(keys)
	return keys
}

// failedAgo records a failure of (consumer, key) last updated ago.
func (h *harness) failedAgo(t *testing.T, consumer, key string, ago time.Duration) {
	t.Helper()
	h.recordFailure(t, h.db, consumer, key, "x")
	h.setAgo(t, h.tables().InboxAttempts, "updated_at", ago, "consumer = ? AND msg_key = ?", consumer, key)
}

func testInboxPurgeAttemptsOlderThan(t *testing.T, h *harness) {
	h.failedAgo(t, "c1", "a", 3*time.Hour)
	h.failedAgo(t, "c1", "b", 2*time.Hour)
	h.failedAgo(t, "c1", "x", time.Hour)
	h.failedAgo(t, "c1", "fresh", 0)
	h.failedAgo(t, "c2", "a", 3*time.Hour)
	h.recordAgo(t, "c1", "a", 3*time.Hour)
	if n := h.purge(t, h.purgeAttempts, "c1", 90*time.Minute, 100); n != 2 {
		t.Errorf("InboxPurgeAttempts older than 90m = %d, want 2", n)
	}
	checkStrings(t, "attempts of c1", h.attemptKeys(t, "c1"), []string{"fresh", "x"})
	checkStrings(t, "attempts of c2", h.attemptKeys(t, "c2"), []string{"a"})
	checkStrings(t, "keys of c1", h.inboxKeys(t, "c1"), []string{"a"})
	if n := h.purge(t, h.purgeAttempts, "c1", 90*time.Minute, 100); n != 0 {
		t.Errorf("second InboxPurgeAttempts = %d, want 0", n)
	}
}

func testInboxPurgeAttemptsLimit(t *testing.T, h *harness) {
	purgeLimitCase(t, h, "InboxPurgeAttempts", h.failedAgo, h.purgeAttempts, h.attemptKeys)
}

// --- InboxCheckSchema ---

func testInboxCheckSchemaMigrated(t *testing.T, h *harness) {
	noErr(t, "InboxCheckSchema", h.s.InboxCheckSchema(h.ctx, h.db))
}

func testInboxCheckSchemaUnmigrated(t *testing.T, h *harness) {
	isErr(t, "InboxCheckSchema on an empty database", h.s.InboxCheckSchema(h.ctx, h.db), dialect.ErrSchemaMissing)
}

func testInboxCheckSchemaTableMissing(t *testing.T, h *harness) {
	h.exec(t, "DROP TABLE "+h.tables().InboxAttempts)
	isErr(t, "InboxCheckSchema without the attempts table", h.s.InboxCheckSchema(h.ctx, h.db), dialect.ErrSchemaMissing)
	noErr(t, "OutboxCheckSchema without the inbox's attempts table", h.s.OutboxCheckSchema(h.ctx, h.db))
}

func testInboxCheckSchemaColumnMissing(t *testing.T, h *harness) {
	h.exec(t, "ALTER TABLE "+h.tables().InboxDead+" DROP COLUMN message_id")
	isErr(t, "InboxCheckSchema without inbox_dead.message_id", h.s.InboxCheckSchema(h.ctx, h.db), dialect.ErrSchemaMissing)
}

// A rollback to the savepoint undoes the claims made after it, keeps those made before, replaces the previous
// savepoint (the latest one counts), and leaves the transaction usable after a failed statement (which aborts a
// PostgreSQL transaction until then).
func testInboxSavepoint(t *testing.T, h *harness) {
	tx := h.begin(t)
	claim := func(key string) {
		t.Helper()
		if res := h.inboxClaim(t, tx, store.InboxClaimParams{Consumer: "c", Key: key, Fingerprint: fp(key)}); !res.Inserted {
			t.Fatalf("InboxClaim(%q) = %+v, want Inserted", key, res)
		}
	}
	noErr(t, "InboxSavepoint", h.s.InboxSavepoint(h.ctx, tx))
	claim("kept")
	noErr(t, "InboxSavepoint", h.s.InboxSavepoint(h.ctx, tx))
	claim("undone")
	noErr(t, "InboxRollbackToSavepoint", h.s.InboxRollbackToSavepoint(h.ctx, tx))
	noErr(t, "InboxSavepoint", h.s.InboxSavepoint(h.ctx, tx))
	if _, err := tx.ExecContext(h.ctx, "SELECT no_such_column FROM "+h.tables().Inbox); err == nil {
		t.Fatal("a statement naming a missing column succeeded")
	}
	noErr(t, "InboxRollbackToSavepoint after a failed statement", h.s.InboxRollbackToSavepoint(h.ctx, tx))
	claim("after")
	commit(t, tx)
	if got, want := h.inboxKeys(t, "c"), []string{"after", "kept"}; !slices.Equal(got, want) {
		t.Errorf("recorded keys = %q, want %q", got, want)
	}
}
