package storetest

import (
	"database/sql"
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

// claim runs OutboxClaimUnkeyed in a relay transaction that it rolls back.
func (h *harness) claim(t *testing.T, afterID int64, limit int) []store.OutboxRow {
	t.Helper()
	tx, end := h.relayTx(t)
	defer end()
	rows, err := h.s.OutboxClaimUnkeyed(h.ctx, tx, afterID, limit)
	noErr(t, "OutboxClaimUnkeyed", err)
	return rows
}

// selectKeyed runs OutboxSelectKeyed in a relay transaction that it rolls back.
func (h *harness) selectKeyed(t *testing.T, parts []int, per int) []store.OutboxRow {
	t.Helper()
	tx, end := h.relayTx(t)
	defer end()
	rows, err := h.s.OutboxSelectKeyed(h.ctx, tx, parts, per)
	noErr(t, "OutboxSelectKeyed", err)
	return rows
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
	h.inTx(t, func(tx *sql.Tx) {
		noErr(t, "OutboxRetry", h.s.OutboxRetry(h.ctx, tx, rr))
		noErr(t, "OutboxBury", h.s.OutboxBury(h.ctx, tx, rr))
	})
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
