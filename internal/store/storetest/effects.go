package storetest

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// The lease the suite begins records with: long enough that no record expires unless a case expires it.
const effectLease = time.Hour

// owner is a new owner token.
func owner() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}

func effectDead(key string) store.EffectDead {
	return store.EffectDead{Payload: []byte("payload of " + key), Headers: []byte(`{"h":"` + key + `"}`),
		Topic: "orders", MessageID: "msg-" + key}
}

func beginParams(consumer, key string, own []byte) store.EffectBeginParams {
	return store.EffectBeginParams{Consumer: consumer, Key: key, Fingerprint: fp(key), Owner: own, Lease: effectLease,
		MaxAttempts: 10, ExpiredError: "lease expired", Dead: effectDead(key)}
}

func (h *harness) effectBegin(t *testing.T, p store.EffectBeginParams) store.EffectBeginResult {
	t.Helper()
	res, err := h.s.EffectBegin(h.ctx, h.db, &p)
	noErr(t, "EffectBegin", err)
	return res
}

// acquire begins a new record of (consumer, key) and returns its owner token.
func (h *harness) acquire(t *testing.T, consumer, key string) []byte {
	t.Helper()
	own := owner()
	if res := h.effectBegin(t, beginParams(consumer, key, own)); res.Status != store.EffectAcquired {
		t.Fatalf("EffectBegin(%s, %q) of a new key: %+v", consumer, key, res)
	}
	return own
}

func (h *harness) effectComplete(t *testing.T, consumer, key string, own, result []byte) bool {
	t.Helper()
	ok, err := h.s.EffectComplete(h.ctx, h.db, &store.EffectCompleteParams{Consumer: consumer, Key: key, Owner: own, Result: result})
	noErr(t, "EffectComplete", err)
	return ok
}

func (h *harness) effectRelease(t *testing.T, p store.EffectReleaseParams) bool {
	t.Helper()
	ok, err := h.s.EffectRelease(h.ctx, h.db, &p)
	noErr(t, "EffectRelease", err)
	return ok
}

// parkEffect begins (consumer, key) and parks it through its owner's release.
func (h *harness) parkEffect(t *testing.T, consumer, key string) {
	t.Helper()
	own := h.acquire(t, consumer, key)
	if !h.effectRelease(t, store.EffectReleaseParams{Consumer: consumer, Key: key, Owner: own, LastError: "failed: " + key,
		Park: true, Dead: effectDead(key)}) {
		t.Fatalf("EffectRelease(park) of %q by its owner = false", key)
	}
}

// rawEffect is a row of the effects table as plain SQL reads it.
type rawEffect struct {
	State     int
	Parked    bool
	Owner     []byte
	Attempts  int
	Result    []byte
	LastError sql.NullString
	LeaseLeft sql.NullInt64 // µs until lease_until
	Age       time.Duration // now - recorded_at
	Payload   []byte
}

func (h *harness) effectRow(t *testing.T, consumer, key string) (r rawEffect, found bool) {
	t.Helper()
	var age int64
	err := h.db.QueryRowContext(h.ctx, h.db.Rebind("SELECT state, parked, owner, attempts, result, last_error, -"+
		h.sinceMicros("lease_until")+", "+h.sinceMicros("recorded_at")+", payload FROM "+h.tables().Effects+
		" WHERE consumer = ? AND msg_key = ?"), consumer, key).Scan(&r.State, &r.Parked, &r.Owner, &r.Attempts, &r.Result,
		&r.LastError, &r.LeaseLeft, &age, &r.Payload)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false
	}
	noErr(t, "read effects row", err)
	r.Age = time.Duration(age) * time.Microsecond
	return r, true
}

func (h *harness) mustEffectRow(t *testing.T, consumer, key string) rawEffect {
	t.Helper()
	r, ok := h.effectRow(t, consumer, key)
	if !ok {
		t.Fatalf("no effects row for (%s, %q)", consumer, key)
	}
	return r
}

// expire moves the lease of (consumer, key) into the past.
func (h *harness) expire(t *testing.T, consumer, key string) {
	t.Helper()
	h.setAgo(t, h.tables().Effects, "lease_until", time.Second, "consumer = ? AND msg_key = ?", consumer, key)
}

func testEffectBeginNew(t *testing.T, h *harness) {
	own := h.acquire(t, "c", "k1")
	r := h.mustEffectRow(t, "c", "k1")
	if r.State != 1 || r.Parked || r.Attempts != 0 || r.Result != nil || string(r.Owner) != string(own) {
		t.Errorf("new record = %+v, want running, owner %x, no attempts", r, own)
	}
	within(t, "lease left", time.Duration(r.LeaseLeft.Int64)*time.Microsecond, effectLease-time.Minute, effectLease)
	within(t, "age", r.Age, -2*time.Second, 2*time.Minute)
}

func testEffectBeginBusy(t *testing.T, h *harness) {
	h.acquire(t, "c", "k")
	res := h.effectBegin(t, beginParams("c", "k", owner()))
	if res.Status != store.EffectBusy {
		t.Fatalf("EffectBegin of a running key = %+v, want busy", res)
	}
	within(t, "LeaseLeft", res.LeaseLeft, effectLease-time.Minute, effectLease)
}

func testEffectBeginCompleted(t *testing.T, h *harness) {
	own := h.acquire(t, "c", "k")
	if !h.effectComplete(t, "c", "k", own, []byte("charge-1")) {
		t.Fatal("EffectComplete by the owner = false")
	}
	res := h.effectBegin(t, beginParams("c", "k", owner()))
	if res.Status != store.EffectCompleted {
		t.Fatalf("EffectBegin of a completed key = %+v", res)
	}
	checkBytes(t, "Result", res.Result, []byte("charge-1"))

	own = h.acquire(t, "c", "none")
	h.effectComplete(t, "c", "none", own, nil)
	if res := h.effectBegin(t, beginParams("c", "none", owner())); res.Status != store.EffectCompleted || res.Result != nil {
		t.Errorf("EffectBegin of a key completed without a result = %+v, want completed with a nil Result", res)
	}
}

func testEffectBeginMismatch(t *testing.T, h *harness) {
	h.acquire(t, "c", "k")
	p := beginParams("c", "k", owner())
	p.Fingerprint = fp("other payload")
	res := h.effectBegin(t, p)
	if res.Status != store.EffectMismatch {
		t.Fatalf("EffectBegin with another fingerprint = %+v, want mismatch", res)
	}
	checkBytes(t, "recorded Fingerprint", res.Fingerprint, fp("k"))
	// Not even an expired lease is taken over with another payload.
	h.expire(t, "c", "k")
	if res := h.effectBegin(t, p); res.Status != store.EffectMismatch {
		t.Errorf("EffectBegin of an expired key with another fingerprint = %+v, want mismatch", res)
	}
}

func testEffectBeginReleased(t *testing.T, h *harness) {
	own := h.acquire(t, "c", "k")
	h.effectRelease(t, store.EffectReleaseParams{Consumer: "c", Key: "k", Owner: own, LastError: "boom"})
	own2 := owner()
	res := h.effectBegin(t, beginParams("c", "k", own2))
	if res.Status != store.EffectAcquired || res.Attempts != 1 {
		t.Fatalf("EffectBegin of a released key = %+v, want acquired (not taken over) after 1 attempt", res)
	}
	r := h.mustEffectRow(t, "c", "k")
	if r.State != 1 || string(r.Owner) != string(own2) || r.Attempts != 1 || r.LastError.String != "boom" {
		t.Errorf("row = %+v, want running under the new owner, 1 attempt, last error kept", r)
	}
}

func testEffectBeginExpired(t *testing.T, h *harness) {
	h.acquire(t, "c", "k")
	h.expire(t, "c", "k")
	own2 := owner()
	res := h.effectBegin(t, beginParams("c", "k", own2))
	if res.Status != store.EffectTakenOver || res.Attempts != 1 {
		t.Fatalf("EffectBegin of an expired key = %+v, want taken over, 1 attempt counted", res)
	}
	r := h.mustEffectRow(t, "c", "k")
	if string(r.Owner) != string(own2) || r.Attempts != 1 || r.LastError.String != "lease expired" || r.LeaseLeft.Int64 <= 0 {
		t.Errorf("row = %+v, want the new owner with a live lease, 1 attempt, last error 'lease expired'", r)
	}
}

func testEffectBeginExpiredParks(t *testing.T, h *harness) {
	h.acquire(t, "c", "k")
	h.exec(t, "UPDATE "+h.tables().Effects+" SET attempts = 2 WHERE consumer = ? AND msg_key = ?", "c", "k")
	h.expire(t, "c", "k")
	p := beginParams("c", "k", owner())
	p.MaxAttempts = 3
	res := h.effectBegin(t, p)
	if res.Status != store.EffectParkedNow || res.Attempts != 3 {
		t.Fatalf("EffectBegin of an expired key at its last attempt = %+v, want parked now after 3 attempts", res)
	}
	dead := h.effectDeadList(t, store.EffectDeadListParams{Consumer: "c", Key: "k"})
	if len(dead) != 1 || dead[0].LastError != "lease expired" || dead[0].Attempts != 3 ||
		string(dead[0].Payload) != "payload of k" || dead[0].MessageID != "msg-k" {
		t.Fatalf("parked record = %+v", dead)
	}
	checkHeaders(t, "parked", dead[0].Headers, []byte(`{"h":"k"}`))
	if res := h.effectBegin(t, beginParams("c", "k", owner())); res.Status != store.EffectParked {
		t.Errorf("EffectBegin of a parked key = %+v, want parked (not now)", res)
	}
}

// Keys differing in case or trailing space are different records, and consumers scope them.
func testEffectBeginByteExact(t *testing.T, h *harness) {
	for _, k := range []string{"Order-1", "order-1", "order-1 "} {
		h.acquire(t, "c", k)
	}
	h.acquire(t, "d", "order-1")
	if n := h.count(t, h.tables().Effects, ""); n != 4 {
		t.Errorf("%d records, want 4", n)
	}
}

// Concurrent begins of one new key: exactly one acquires it, the others find it busy.
func testEffectBeginConcurrent(t *testing.T, h *harness) {
	const n = 16
	results := make([]store.EffectBeginResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p := beginParams("c", "k", owner())
			results[i], errs[i] = h.s.EffectBegin(h.ctx, h.db, &p)
		})
	}
	wg.Wait()
	acquired := 0
	for i, r := range results {
		noErr(t, fmt.Sprintf("EffectBegin %d", i), errs[i])
		switch r.Status {
		case store.EffectAcquired:
			acquired++
		case store.EffectBusy:
		default:
			t.Errorf("EffectBegin %d = %+v, want acquired or busy", i, r)
		}
	}
	if acquired != 1 {
		t.Errorf("%d of %d concurrent begins acquired the key, want 1", acquired, n)
	}
}

func testEffectCompleteOwner(t *testing.T, h *harness) {
	own := h.acquire(t, "c", "k")
	if !h.effectComplete(t, "c", "k", own, []byte("r")) {
		t.Fatal("EffectComplete by the owner = false")
	}
	r := h.mustEffectRow(t, "c", "k")
	if r.State != 3 || string(r.Result) != "r" || r.LeaseLeft.Valid {
		t.Errorf("row = %+v, want completed with result r and no lease", r)
	}
	if !h.effectComplete(t, "c", "k", own, []byte("r")) {
		t.Error("EffectComplete repeated by the owner = false, want true (a retried call)")
	}
	if h.effectComplete(t, "c", "k", owner(), []byte("x")) {
		t.Error("EffectComplete of a completed key by another owner = true")
	}
}

// The owner of a taken-over lease cannot complete or release it.
func testEffectCompleteFenced(t *testing.T, h *harness) {
	old := h.acquire(t, "c", "k")
	h.expire(t, "c", "k")
	own2 := owner()
	if res := h.effectBegin(t, beginParams("c", "k", own2)); res.Status != store.EffectTakenOver {
		t.Fatalf("EffectBegin of an expired key = %+v", res)
	}
	if h.effectComplete(t, "c", "k", old, []byte("old")) {
		t.Error("EffectComplete by the owner whose lease was taken over = true")
	}
	if h.effectRelease(t, store.EffectReleaseParams{Consumer: "c", Key: "k", Owner: old, LastError: "x"}) {
		t.Error("EffectRelease by the owner whose lease was taken over = true")
	}
	if !h.effectComplete(t, "c", "k", own2, []byte("new")) {
		t.Error("EffectComplete by the new owner = false")
	}
	if r := h.mustEffectRow(t, "c", "k"); string(r.Result) != "new" || r.Attempts != 1 {
		t.Errorf("row = %+v, want the new owner's result after 1 attempt", r)
	}
	// An owner whose lease expired but was not taken over still completes.
	own3 := h.acquire(t, "c", "late")
	h.expire(t, "c", "late")
	if !h.effectComplete(t, "c", "late", own3, nil) {
		t.Error("EffectComplete by the owner of an expired lease nobody took over = false")
	}
}

func testEffectReleaseCounts(t *testing.T, h *harness) {
	own := h.acquire(t, "c", "k")
	if !h.effectRelease(t, store.EffectReleaseParams{Consumer: "c", Key: "k", Owner: own, LastError: "boom"}) {
		t.Fatal("EffectRelease by the owner = false")
	}
	r := h.mustEffectRow(t, "c", "k")
	if r.State != 2 || r.Attempts != 1 || r.LastError.String != "boom" || r.LeaseLeft.Valid || r.Parked {
		t.Errorf("row = %+v, want released after 1 attempt, last error boom, no lease", r)
	}
	if h.effectRelease(t, store.EffectReleaseParams{Consumer: "c", Key: "k", Owner: own, LastError: "again"}) {
		t.Error("EffectRelease of a released key = true")
	}
}

func testEffectReleasePark(t *testing.T, h *harness) {
	h.parkEffect(t, "c", "k")
	r := h.mustEffectRow(t, "c", "k")
	if !r.Parked || r.Attempts != 1 || string(r.Payload) != "payload of k" || r.LeaseLeft.Valid {
		t.Errorf("row = %+v, want parked with its payload after 1 attempt", r)
	}
	if res := h.effectBegin(t, beginParams("c", "k", owner())); res.Status != store.EffectParked {
		t.Errorf("EffectBegin of a parked key = %+v", res)
	}
}

func (h *harness) effectDeadList(t *testing.T, p store.EffectDeadListParams) []store.EffectDeadRow {
	t.Helper()
	rows, err := h.s.EffectDeadList(h.ctx, h.db, &p)
	noErr(t, "EffectDeadList", err)
	return rows
}

func effectDeadKeys(rows []store.EffectDeadRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Key
	}
	return out
}

func testEffectDeadListPaging(t *testing.T, h *harness) {
	for _, k := range []string{"b", "a", "d", "c"} {
		h.parkEffect(t, "c", k)
	}
	h.parkEffect(t, "other", "a")
	own := h.acquire(t, "c", "running")
	h.effectComplete(t, "c", "running", own, nil)
	checkStrings(t, "first page", effectDeadKeys(h.effectDeadList(t, store.EffectDeadListParams{Consumer: "c", Limit: 3})),
		[]string{"a", "b", "c"})
	checkStrings(t, "next page", effectDeadKeys(h.effectDeadList(t, store.EffectDeadListParams{Consumer: "c", AfterKey: "c", Limit: 3})),
		[]string{"d"})
	checkStrings(t, "key", effectDeadKeys(h.effectDeadList(t, store.EffectDeadListParams{Consumer: "c", Key: "b"})), []string{"b"})
	checkStrings(t, "unparked key", effectDeadKeys(h.effectDeadList(t, store.EffectDeadListParams{Consumer: "c", Key: "running"})), nil)
	before := time.Now()
	rows := h.effectDeadList(t, store.EffectDeadListParams{Consumer: "other", Limit: 10})
	if len(rows) != 1 || rows[0].Key != "a" || string(rows[0].Payload) != "payload of a" || rows[0].Topic != "orders" ||
		rows[0].MessageID != "msg-a" || rows[0].Attempts != 1 || rows[0].LastError != "failed: a" {
		t.Fatalf("other's parked records = %+v", rows)
	}
	checkBytes(t, "Fingerprint", rows[0].Fingerprint, fp("a"))
	recent(t, "ParkedAt", rows[0].ParkedAt, before.Add(-time.Minute), time.Now())
}

func testEffectTakeParked(t *testing.T, h *harness) {
	h.parkEffect(t, "c", "k")
	own := owner()
	row, found, err := h.s.EffectTakeParked(h.ctx, h.db, &store.EffectTakeParkedParams{Consumer: "c", Key: "k", Owner: own, Lease: effectLease})
	noErr(t, "EffectTakeParked", err)
	if !found || row.Key != "k" || string(row.Payload) != "payload of k" || row.LastError != "failed: k" {
		t.Fatalf("EffectTakeParked = %+v, %v", row, found)
	}
	if res := h.effectBegin(t, beginParams("c", "k", owner())); res.Status != store.EffectBusy {
		t.Errorf("EffectBegin of a key taken to replay = %+v, want busy", res)
	}
	_, found, err = h.s.EffectTakeParked(h.ctx, h.db, &store.EffectTakeParkedParams{Consumer: "c", Key: "k", Owner: owner(), Lease: effectLease})
	noErr(t, "EffectTakeParked again", err)
	if found {
		t.Error("EffectTakeParked of a key taken already: found")
	}
	if !h.effectComplete(t, "c", "k", own, []byte("replayed")) {
		t.Fatal("EffectComplete of the replay = false")
	}
	if r := h.mustEffectRow(t, "c", "k"); r.State != 3 || r.Parked || r.Payload != nil || r.Attempts != 1 {
		t.Errorf("row after the replay = %+v, want completed, payload cleared, attempts kept", r)
	}
}

func testEffectTakeParkedConcurrent(t *testing.T, h *harness) {
	h.parkEffect(t, "c", "k")
	const n = 8
	found := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, found[i], errs[i] = h.s.EffectTakeParked(h.ctx, h.db, &store.EffectTakeParkedParams{Consumer: "c", Key: "k",
				Owner: owner(), Lease: effectLease})
		})
	}
	wg.Wait()
	took := 0
	for i := range n {
		noErr(t, "EffectTakeParked", errs[i])
		if found[i] {
			took++
		}
	}
	if took != 1 {
		t.Errorf("%d of %d concurrent EffectTakeParked took the record, want 1", took, n)
	}
}

func testEffectDropParked(t *testing.T, h *harness) {
	h.parkEffect(t, "c", "k")
	drop := func(key string) bool {
		ok, err := h.s.EffectDropParked(h.ctx, h.db, &store.EffectKeyParams{Consumer: "c", Key: key})
		noErr(t, "EffectDropParked", err)
		return ok
	}
	if !drop("k") {
		t.Fatal("EffectDropParked of a parked key = false")
	}
	if drop("k") || drop("missing") {
		t.Error("EffectDropParked of a key that is not parked = true")
	}
	if res := h.effectBegin(t, beginParams("c", "k", owner())); res.Status != store.EffectCompleted || res.Result != nil {
		t.Errorf("EffectBegin of a dropped key = %+v, want completed without a result", res)
	}
	if r := h.mustEffectRow(t, "c", "k"); r.Payload != nil {
		t.Errorf("dropped record still holds its payload: %+v", r)
	}
}

func (h *harness) effectPurge(t *testing.T, consumer string, older time.Duration, limit int) int {
	t.Helper()
	tx := h.beginIso(t, sql.LevelReadCommitted)
	n, err := h.s.EffectPurge(h.ctx, tx, &store.EffectPurgeParams{Consumer: consumer, OlderThan: older, Limit: limit})
	noErr(t, "EffectPurge", err)
	commit(t, tx)
	return n
}

func (h *harness) ageEffect(t *testing.T, consumer, key string, ago time.Duration) {
	t.Helper()
	h.setAgo(t, h.tables().Effects, "recorded_at", ago, "consumer = ? AND msg_key = ?", consumer, key)
}

func testEffectPurgeOlderThan(t *testing.T, h *harness) {
	complete := func(key string) {
		own := h.acquire(t, "c", key)
		h.effectComplete(t, "c", key, own, nil)
	}
	complete("old")
	complete("new")
	own := h.acquire(t, "c", "released")
	h.effectRelease(t, store.EffectReleaseParams{Consumer: "c", Key: "released", Owner: own, LastError: "x"})
	h.acquire(t, "c", "running")   // a live lease: kept, however old
	h.acquire(t, "c", "expired")   // an expired lease: purged
	h.parkEffect(t, "c", "parked") // parked: kept until replayed or dropped
	h.acquire(t, "other", "old")   // another consumer's
	for _, k := range []string{"old", "released", "running", "expired", "parked"} {
		h.ageEffect(t, "c", k, 3*time.Hour)
	}
	h.ageEffect(t, "other", "old", 3*time.Hour)
	h.expire(t, "c", "expired")
	if n := h.effectPurge(t, "c", 2*time.Hour, 100); n != 3 {
		t.Errorf("EffectPurge deleted %d, want 3 (old, released, expired)", n)
	}
	for k, want := range map[string]bool{"old": false, "released": false, "expired": false, "new": true, "running": true, "parked": true} {
		if _, found := h.effectRow(t, "c", k); found != want {
			t.Errorf("record %q present = %v after purge, want %v", k, found, want)
		}
	}
	if _, found := h.effectRow(t, "other", "old"); !found {
		t.Error("EffectPurge deleted another consumer's record")
	}
}

func testEffectPurgeLimit(t *testing.T, h *harness) {
	for i, k := range []string{"a", "b", "c", "d", "e"} {
		own := h.acquire(t, "c", k)
		h.effectComplete(t, "c", k, own, nil)
		h.ageEffect(t, "c", k, time.Duration(10-i)*time.Hour) // a oldest
	}
	if n := h.effectPurge(t, "c", time.Hour, 2); n != 2 {
		t.Fatalf("EffectPurge with limit 2 deleted %d", n)
	}
	for k, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, found := h.effectRow(t, "c", k); found != want {
			t.Errorf("record %q present = %v, want %v (oldest first)", k, found, want)
		}
	}
	if n := h.effectPurge(t, "c", time.Hour, 10); n != 3 {
		t.Errorf("second EffectPurge deleted %d, want 3", n)
	}
}

func testEffectCheckSchemaMigrated(t *testing.T, h *harness) {
	noErr(t, "EffectCheckSchema", h.s.EffectCheckSchema(h.ctx, h.db))
}

func testEffectCheckSchemaUnmigrated(t *testing.T, h *harness) {
	isErr(t, "EffectCheckSchema", h.s.EffectCheckSchema(h.ctx, h.db), dialect.ErrSchemaMissing)
}

func testEffectCheckSchemaColumnMissing(t *testing.T, h *harness) {
	h.exec(t, "ALTER TABLE "+h.tables().Effects+" DROP COLUMN parked_at")
	isErr(t, "EffectCheckSchema", h.s.EffectCheckSchema(h.ctx, h.db), dialect.ErrSchemaMissing)
}
