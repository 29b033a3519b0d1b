package storetest

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// unkeyed is a message without a sharding key (partition -1).
func unkeyed(key string) store.OutboxInsertRow {
	return store.OutboxInsertRow{Partition: -1, Topic: "orders", Key: key, Payload: []byte("payload of " + key)}
}

// keyed is a message of sharding key sk in partition part (the suite picks partitions; package outbox hashes).
func keyed(part int, sk, key string) store.OutboxInsertRow {
	return store.OutboxInsertRow{Partition: part, Topic: "orders", Key: key, ShardingKey: sk,
		Payload: []byte("payload of " + key)}
}

func delayed(r store.OutboxInsertRow, by time.Duration) store.OutboxInsertRow {
	r.DeliverAt = time.Now().Add(by)
	return r
}

// insert writes rows with OutboxInsert (outside any transaction) and returns their ids in input order.
func (h *harness) insert(t *testing.T, rows ...store.OutboxInsertRow) []int64 {
	t.Helper()
	noErr(t, "OutboxInsert", h.s.OutboxInsert(h.ctx, h.db, false, rows))
	ids := h.newIDs(t)
	if len(ids) != len(rows) {
		t.Fatalf("OutboxInsert of %d rows added %d rows (%v)", len(rows), len(ids), ids)
	}
	return ids
}

// newIDs returns the ids of the outbox rows added since the previous call, ascending.
func (h *harness) newIDs(t *testing.T) []int64 {
	t.Helper()
	ids := h.ids(t, h.tables().Outbox, "id > ?", h.hw)
	if len(ids) > 0 {
		h.hw = ids[len(ids)-1]
	}
	return ids
}

func ref(id int64, part int) store.OutboxRowRef { return store.OutboxRowRef{ID: id, Partition: part} }

func retry(id int64, part int, delay time.Duration, msg string) store.OutboxRetryRow {
	return store.OutboxRetryRow{ID: id, Partition: part, Delay: delay, Error: msg}
}

// inTx runs f in a transaction and commits it.
func (h *harness) inTx(t *testing.T, f func(tx *sql.Tx)) {
	t.Helper()
	tx := h.begin(t)
	f(tx)
	commit(t, tx)
}

// relayTx begins a transaction the way a relay worker does: on a connection of its own readied by
// OutboxPrepareConn. end rolls the transaction back (if it is still open) and discards the connection; it also
// runs at the end of the test.
func (h *harness) relayTx(t *testing.T) (tx *sql.Tx, end func()) {
	t.Helper()
	c, err := h.db.DB.DB.Conn(h.ctx)
	noErr(t, "conn", err)
	end = func() {
		if tx != nil {
			_ = tx.Rollback()
		}
		store.DiscardConn(c)
	}
	t.Cleanup(end)
	noErr(t, "OutboxPrepareConn", h.s.OutboxPrepareConn(h.ctx, c))
	tx, err = c.BeginTx(h.ctx, nil)
	noErr(t, "begin", err)
	return tx, end
}

// testLease is the lease of the suite's claims: long enough that no lease ends while a case runs.
const testLease = time.Minute

// nextToken returns a claim token no other claim of the case used.
func (h *harness) nextToken() int64 {
	h.tokens++
	return h.tokens
}

// claimUnkeyed runs OutboxClaimUnkeyed with a fresh token and no byte budget; the rows stay leased.
func (h *harness) claimUnkeyed(t *testing.T, afterID int64, limit int) ([]store.OutboxRow, int64) {
	t.Helper()
	tok := h.nextToken()
	rows, err := h.s.OutboxClaimUnkeyed(h.ctx, h.db, &store.OutboxClaim{Token: tok, Lease: testLease, Limit: limit,
		AfterID: afterID})
	noErr(t, "OutboxClaimUnkeyed", err)
	return rows, tok
}

// claimKeyed runs OutboxClaimKeyed with a fresh token, no byte budget and a limit of 1000; the rows stay leased.
func (h *harness) claimKeyed(t *testing.T, parts []int, perPartition int) ([]store.OutboxRow, int64) {
	t.Helper()
	tok := h.nextToken()
	rows, err := h.s.OutboxClaimKeyed(h.ctx, h.db, &store.OutboxClaim{Token: tok, Lease: testLease, Limit: 1000,
		Parts: parts, PerPartition: perPartition})
	noErr(t, "OutboxClaimKeyed", err)
	return rows, tok
}

// claim returns the rows OutboxClaimUnkeyed takes, then releases them (due now, nothing counted): a look at
// what a claim would take that leaves the rows claimable.
func (h *harness) claim(t *testing.T, afterID int64, limit int) []store.OutboxRow {
	t.Helper()
	rows, tok := h.claimUnkeyed(t, afterID, limit)
	h.release(t, tok, rows)
	return rows
}

// selectKeyed is claim for OutboxClaimKeyed.
func (h *harness) selectKeyed(t *testing.T, parts []int, perPartition int) []store.OutboxRow {
	t.Helper()
	rows, tok := h.claimKeyed(t, parts, perPartition)
	h.release(t, tok, rows)
	return rows
}

// release ends the lease of rows with OutboxFinish.
func (h *harness) release(t *testing.T, token int64, rows []store.OutboxRow) {
	t.Helper()
	if got := h.finish(t, &store.OutboxFinish{Token: token, Release: refsOfRows(rows)}); got.Updated != len(rows) {
		t.Fatalf("release of %d claimed rows changed %d", len(rows), got.Updated)
	}
}

func (h *harness) finish(t *testing.T, f *store.OutboxFinish) store.OutboxFinished {
	t.Helper()
	got, err := h.s.OutboxFinish(h.ctx, h.db, f)
	noErr(t, "OutboxFinish", err)
	return got
}

// leaseIDs leases rows by plain SQL, as a claim would (token, lease end in a minute: a keyed row's available_at,
// an unkeyed row's lease_until), whatever their state, and returns the token.
func (h *harness) leaseIDs(t *testing.T, ids ...int64) int64 {
	t.Helper()
	tok := h.nextToken()
	end := h.fromNow(testLease)
	for _, id := range ids {
		h.exec(t, "UPDATE "+h.tables().Outbox+" SET claim_token = ?, available_at = CASE WHEN part >= 0 THEN "+end+
			" ELSE available_at END, lease_until = CASE WHEN part < 0 THEN "+end+" END WHERE id = ?", tok, id)
	}
	return tok
}

// leaseEnd is how long row id's lease has to run (negative: it ended; a keyed row's is its available_at).
func (h *harness) leaseEnd(t *testing.T, id int64) time.Duration {
	t.Helper()
	var us sql.NullInt64
	h.scan(t, "SELECT -"+h.sinceMicros("CASE WHEN part >= 0 THEN available_at ELSE lease_until END")+" FROM "+
		h.tables().Outbox+" WHERE id = ?", []any{id}, &us)
	if !us.Valid {
		return -time.Hour // never leased
	}
	return time.Duration(us.Int64) * time.Microsecond
}

// fromNow is an SQL expression for now + d.
func (h *harness) fromNow(d time.Duration) string {
	if h.mysql {
		return fmt.Sprintf("UTC_TIMESTAMP(6) + INTERVAL %d MICROSECOND", d.Microseconds())
	}
	return fmt.Sprintf("now() + %d * INTERVAL '1 microsecond'", d.Microseconds())
}

// retryRows records failed attempts on rows (leased for it), as a relay's finish does.
func (h *harness) retryRows(t *testing.T, rows ...store.OutboxRetryRow) {
	t.Helper()
	tok := h.leaseIDs(t, retryIDs(rows)...)
	if got := h.finish(t, &store.OutboxFinish{Token: tok, Retry: rows}); got.Updated != len(rows) {
		t.Fatalf("retry of %d rows changed %d", len(rows), got.Updated)
	}
}

// buryRows moves rows (leased for it) to the dead-letter table.
func (h *harness) buryRows(t *testing.T, rows ...store.OutboxRetryRow) {
	t.Helper()
	tok := h.leaseIDs(t, retryIDs(rows)...)
	if got := h.finish(t, &store.OutboxFinish{Token: tok, Bury: rows}); got.Buried != len(rows) {
		t.Fatalf("bury of %d rows moved %d", len(rows), got.Buried)
	}
}

// deleteRows deletes rows (leased for it) as published, keeping them in the published table with keep.
func (h *harness) deleteRows(t *testing.T, keep bool, refs ...store.OutboxRowRef) {
	t.Helper()
	ids := make([]int64, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	tok := h.leaseIDs(t, ids...)
	if got := h.finish(t, &store.OutboxFinish{Token: tok, Published: refs, Keep: keep}); got.Published != len(refs) {
		t.Fatalf("delete of %d published rows deleted %d", len(refs), got.Published)
	}
}

func retryIDs(rows []store.OutboxRetryRow) []int64 {
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids
}

func refsOfRows(rows []store.OutboxRow) []store.OutboxRowRef {
	out := make([]store.OutboxRowRef, len(rows))
	for i, r := range rows {
		out[i] = ref(r.ID, r.Partition)
	}
	return out
}

// leaseOf reads the claim token (0 for NULL) of row id.
func (h *harness) leaseOf(t *testing.T, id int64) int64 {
	t.Helper()
	var tok sql.NullInt64
	h.scan(t, "SELECT claim_token FROM "+h.tables().Outbox+" WHERE id = ?", []any{id}, &tok)
	return tok.Int64
}

func rowIDs(rows []store.OutboxRow) []int64 {
	out := []int64{}
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}

// byPartition groups the ids of rows by partition, keeping their order.
func byPartition(rows []store.OutboxRow) map[int][]int64 {
	out := map[int][]int64{}
	for _, r := range rows {
		out[r.Partition] = append(out[r.Partition], r.ID)
	}
	return out
}

func checkIDs(t *testing.T, what string, got, want []int64) {
	t.Helper()
	if want == nil {
		want = []int64{}
	}
	if got == nil {
		got = []int64{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: ids %v, want %v", what, got, want)
	}
}

// checkRow compares what a reader of the Store returned with what was inserted.
func checkRow(t *testing.T, what string, got store.OutboxRow, want store.OutboxInsertRow) {
	t.Helper()
	if got.Partition != want.Partition || got.Topic != want.Topic || got.Key != want.Key || got.Tag != want.Tag ||
		got.ShardingKey != want.ShardingKey {
		t.Errorf("%s = {part %d topic %q key %q tag %q sharding key %q}, want {part %d topic %q key %q tag %q sharding key %q}",
			what, got.Partition, got.Topic, got.Key, got.Tag, got.ShardingKey,
			want.Partition, want.Topic, want.Key, want.Tag, want.ShardingKey)
	}
	wantPayload := want.Payload
	if wantPayload == nil {
		wantPayload = []byte{}
	}
	checkBytes(t, what+" payload", got.Payload, wantPayload)
	checkHeaders(t, what, got.Headers, want.Headers)
}

// rawOutbox is an outbox row as plain SQL reads it.
type rawOutbox struct {
	Part                         int
	Topic, Key, Tag, ShardingKey string
	Payload                      []byte
	Headers, LastError           sql.NullString
	Attempts                     int
	DueIn, Age                   time.Duration // available_at - now, now - created_at
	CreatedAt                    string        // timeText
	PublishedAge                 time.Duration // published table only: now - published_at
}

// outboxRow reads row id of the outbox table with plain SQL; found is false when there is none.
func (h *harness) outboxRow(t *testing.T, id int64) (r rawOutbox, found bool) {
	t.Helper()
	q := h.db.Rebind("SELECT part, topic, msg_key, tag, sharding_key, payload, headers, last_error, attempts, -" +
		h.sinceMicros("available_at") + ", " + h.sinceMicros("created_at") + ", " + h.timeText("created_at") +
		" FROM " + h.tables().Outbox + " WHERE id = ?")
	var due, age int64
	err := h.db.QueryRowContext(h.ctx, q, id).Scan(&r.Part, &r.Topic, &r.Key, &r.Tag, &r.ShardingKey, &r.Payload,
		&r.Headers, &r.LastError, &r.Attempts, &due, &age, &r.CreatedAt)
	if err == sql.ErrNoRows {
		return r, false
	}
	noErr(t, "read outbox row", err)
	r.DueIn, r.Age = time.Duration(due)*time.Microsecond, time.Duration(age)*time.Microsecond
	return r, true
}

// publishedRow reads row id of the published table with plain SQL.
func (h *harness) publishedRow(t *testing.T, id int64) (r rawOutbox, found bool) {
	t.Helper()
	q := h.db.Rebind("SELECT part, topic, msg_key, tag, sharding_key, payload, headers, attempts, " +
		h.sinceMicros("published_at") + ", " + h.timeText("created_at") +
		" FROM " + h.tables().OutboxPublished + " WHERE id = ?")
	var age int64
	err := h.db.QueryRowContext(h.ctx, q, id).Scan(&r.Part, &r.Topic, &r.Key, &r.Tag, &r.ShardingKey, &r.Payload,
		&r.Headers, &r.Attempts, &age, &r.CreatedAt)
	if err == sql.ErrNoRows {
		return r, false
	}
	noErr(t, "read published row", err)
	r.PublishedAge = time.Duration(age) * time.Microsecond
	return r, true
}

// checkRaw compares a row read with plain SQL with what was inserted.
func checkRaw(t *testing.T, what string, got rawOutbox, want store.OutboxInsertRow) {
	t.Helper()
	if got.Part != want.Partition || got.Topic != want.Topic || got.Key != want.Key || got.Tag != want.Tag ||
		got.ShardingKey != want.ShardingKey {
		t.Errorf("%s = {part %d topic %q key %q tag %q sharding key %q}, want {part %d topic %q key %q tag %q sharding key %q}",
			what, got.Part, got.Topic, got.Key, got.Tag, got.ShardingKey,
			want.Partition, want.Topic, want.Key, want.Tag, want.ShardingKey)
	}
	wantPayload := want.Payload
	if wantPayload == nil {
		wantPayload = []byte{}
	}
	if string(got.Payload) != string(wantPayload) {
		t.Errorf("%s payload = %q, want %q", what, got.Payload, wantPayload)
	}
	switch {
	case want.Headers == nil && got.Headers.Valid:
		t.Errorf("%s headers = %q, want NULL", what, got.Headers.String)
	case want.Headers != nil && (!got.Headers.Valid || !jsonEqual([]byte(got.Headers.String), want.Headers)):
		t.Errorf("%s headers = %+v, want %s", what, got.Headers, want.Headers)
	}
}

// bury inserts rows, fails each once with an error naming its key and moves them to the dead-letter table:
// the returned ids are dead letters with attempts 2.
func (h *harness) bury(t *testing.T, rows ...store.OutboxInsertRow) []int64 {
	t.Helper()
	ids := h.insert(t, rows...)
	var rr []store.OutboxRetryRow
	for i, id := range ids {
		rr = append(rr, retry(id, rows[i].Partition, 0, "error of "+rows[i].Key))
	}
	h.retryRows(t, rr...)
	h.buryRows(t, rr...)
	return ids
}

// deadList lists every outbox dead letter.
func (h *harness) deadList(t *testing.T) []store.OutboxDeadRow {
	t.Helper()
	rows, err := h.s.OutboxDeadList(h.ctx, h.db, 0, 1000)
	noErr(t, "OutboxDeadList", err)
	return rows
}

func deadIDs(rows []store.OutboxDeadRow) []int64 {
	out := []int64{}
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return out
}
