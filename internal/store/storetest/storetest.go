package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/migrations"
)

// testCase is one conformance case: fn runs on each target with a harness on a fresh database.
type testCase struct {
	name string
	fn   func(t *testing.T, h *harness)
	opts []testdb.Option
}

// unmigrated is the option of the cases that need a database without txbox's tables.
var unmigrated = []testdb.Option{testdb.Unmigrated()}

// suite is every case, grouped by the Store method (or concern) it is about: subtests are Method/Case/target.
var suite = []struct {
	method string
	cases  []testCase
}{
	{"OutboxInsert", []testCase{{"NoRows", testOutboxInsertNoRows, nil}, {"OneRow", testOutboxInsertOneRow, nil},
		{"ManyRows", testOutboxInsertManyRows, nil}, {"Headers", testOutboxInsertHeaders, nil},
		{"Payload", testOutboxInsertPayload, nil}, {"DeliverAt", testOutboxInsertDeliverAt, nil},
		{"Notify", testOutboxInsertNotify, nil}}},
	{"OutboxPrepareConn", []testCase{{"ReadCommitted", testOutboxPrepareConnIsolation, nil}}},
	{"OutboxKeyedPartitions", []testCase{{"Empty", testOutboxKeyedPartitionsEmpty, nil},
		{"Ascending", testOutboxKeyedPartitionsAscending, nil}}},
	{"OutboxLockPartitions", []testCase{{"Exclusive", testOutboxLockExclusive, nil},
		{"ReleasedByUnlock", testOutboxLockReleasedByUnlock, nil},
		{"ReleasedByClose", testOutboxLockReleasedByClose, nil}}},
	{"OutboxClaimKeyed", []testCase{{"PartitionOrder", testOutboxSelectKeyedOrder, nil},
		{"Limits", testOutboxSelectKeyedLimit, nil},
		{"OnlyKeyedRowsOfParts", testOutboxSelectKeyedOnlyParts, nil},
		{"BackoffHoldsBackKey", testOutboxSelectKeyedBackoff, nil},
		{"DelayedHoldsBackKey", testOutboxSelectKeyedDelayed, nil},
		{"LeaseHoldsBackKey", testOutboxClaimKeyedLeaseHoldsBackKey, nil},
		{"ByteExactKeys", testOutboxSelectKeyedByteExact, nil}, {"Fields", testOutboxSelectKeyedFields, nil},
		{"Leases", testOutboxClaimKeyedLeases, nil}, {"ByteBudget", testOutboxClaimKeyedBytes, nil}}},
	{"OutboxClaimUnkeyed", []testCase{{"AfterIDAndLimit", testOutboxClaimAfterLimit, nil},
		{"NeverKeyed", testOutboxClaimNeverKeyed, nil}, {"NotDue", testOutboxClaimNotDue, nil},
		{"SkipLocked", testOutboxClaimSkipLocked, nil}, {"Leases", testOutboxClaimUnkeyedLeases, nil},
		{"ByteBudget", testOutboxClaimUnkeyedBytes, nil}, {"Commits", testOutboxClaimCommits, nil},
		{"LeaseColumns", testOutboxClaimLeaseColumns, nil}}},
	{"OutboxRenew", []testCase{{"OnlyLiveLeasesOfToken", testOutboxRenew, nil}}},
	{"OutboxFinish", []testCase{{"DeleteCount", testOutboxDeleteCount, nil}, {"Keep", testOutboxDeleteKeep, nil},
		{"RetryBackoff", testOutboxRetryBackoff, nil}, {"RetryErrorText", testOutboxRetryErrorText, nil},
		{"Bury", testOutboxBury, nil}, {"ReleaseAndHold", testOutboxFinishReleaseHold, nil},
		{"FencedByToken", testOutboxFinishFenced, nil}}},
	{"OutboxResume", []testCase{{"HeldRowsOfTopic", testOutboxResume, nil}}},
	{"OutboxPurgePublished", []testCase{{"OlderThan", testOutboxPurgePublishedOlderThan, nil},
		{"LimitOldestFirst", testOutboxPurgePublishedLimit, nil}}},
	{"OutboxDeadList", []testCase{{"Paging", testOutboxDeadListPaging, nil},
		{"Fields", testOutboxDeadListFields, nil}}},
	{"OutboxDeadRequeue", []testCase{{"Moves", testOutboxDeadRequeue, nil},
		{"Concurrent", testOutboxDeadRequeueConcurrent, nil},
		{"ConcurrentReadCommitted", testOutboxDeadRequeueConcurrentReadCommitted, nil}}},
	{"OutboxDeadDelete", []testCase{{"Count", testOutboxDeadDelete, nil}}},
	{"OutboxListen", []testCase{{"Notifications", testOutboxListen, nil}}},
	{"OutboxCheckSchema", []testCase{{"Migrated", testOutboxCheckSchemaMigrated, nil},
		{"Unmigrated", testOutboxCheckSchemaUnmigrated, unmigrated},
		{"TableMissing", testOutboxCheckSchemaTableMissing, nil},
		{"ColumnMissing", testOutboxCheckSchemaColumnMissing, nil}}},
	{"InboxClaim", []testCase{{"New", testInboxClaimNew, nil}, {"Duplicate", testInboxClaimDuplicate, nil},
		{"Parked", testInboxClaimParked, nil}, {"ByteExactKeys", testInboxClaimByteExact, nil},
		{"ClearAttempts", testInboxClaimClearAttempts, nil}, {"ReceivedAt", testInboxClaimReceivedAt, nil},
		{"ConcurrentCommit", testInboxClaimConcurrentCommit, nil},
		{"ConcurrentRollback", testInboxClaimConcurrentRollback, nil}}},
	{"InboxSavepoint", []testCase{{"RollbackToLatest", testInboxSavepoint, nil}}},
	{"InboxRecordFailure", []testCase{{"Counts", testInboxRecordFailure, nil}}},
	{"InboxPark", []testCase{{"NewKey", testInboxParkNew, nil}, {"RecordedKey", testInboxParkRecorded, nil},
		{"Minimal", testInboxParkMinimal, nil}, {"CutToFit", testInboxParkCutToFit, nil}}},
	{"InboxDeadGet", []testCase{{"Scoped", testInboxDeadGet, nil}, {"ForUpdate", testInboxDeadGetForUpdate, nil}}},
	{"InboxDeadDelete", []testCase{{"Scoped", testInboxDeadDelete, nil}}},
	{"InboxDeadList", []testCase{{"Paging", testInboxDeadListPaging, nil}, {"Key", testInboxDeadListKey, nil}}},
	{"InboxSettle", []testCase{{"Parked", testInboxSettleParked, nil},
		{"Processed", testInboxSettleProcessed, nil}, {"Missing", testInboxSettleMissing, nil}}},
	{"InboxUnpark", []testCase{{"OnlyParked", testInboxUnpark, nil}}},
	{"InboxPurge", []testCase{{"OlderThan", testInboxPurgeOlderThan, nil},
		{"LimitOldestFirst", testInboxPurgeLimit, nil}}},
	{"InboxPurgeAttempts", []testCase{{"OlderThan", testInboxPurgeAttemptsOlderThan, nil},
		{"LimitOldestFirst", testInboxPurgeAttemptsLimit, nil}}},
	{"InboxCheckSchema", []testCase{{"Migrated", testInboxCheckSchemaMigrated, nil},
		{"Unmigrated", testInboxCheckSchemaUnmigrated, unmigrated},
		{"TableMissing", testInboxCheckSchemaTableMissing, nil},
		{"ColumnMissing", testInboxCheckSchemaColumnMissing, nil}}},
	{"EffectBegin", []testCase{{"New", testEffectBeginNew, nil}, {"Busy", testEffectBeginBusy, nil},
		{"Completed", testEffectBeginCompleted, nil}, {"Mismatch", testEffectBeginMismatch, nil},
		{"Released", testEffectBeginReleased, nil}, {"Expired", testEffectBeginExpired, nil},
		{"ExpiredParks", testEffectBeginExpiredParks, nil}, {"ByteExactKeys", testEffectBeginByteExact, nil},
		{"Concurrent", testEffectBeginConcurrent, nil}}},
	{"EffectComplete", []testCase{{"Owner", testEffectCompleteOwner, nil}, {"Fenced", testEffectCompleteFenced, nil}}},
	{"EffectRelease", []testCase{{"Counts", testEffectReleaseCounts, nil}, {"Park", testEffectReleasePark, nil}}},
	{"EffectDeadList", []testCase{{"Paging", testEffectDeadListPaging, nil}}},
	{"EffectTakeParked", []testCase{{"Takes", testEffectTakeParked, nil},
		{"Concurrent", testEffectTakeParkedConcurrent, nil}}},
	{"EffectDropParked", []testCase{{"Drops", testEffectDropParked, nil}}},
	{"EffectPurge", []testCase{{"OlderThan", testEffectPurgeOlderThan, nil},
		{"LimitOldestFirst", testEffectPurgeLimit, nil}}},
	{"EffectCheckSchema", []testCase{{"Migrated", testEffectCheckSchemaMigrated, nil},
		{"Unmigrated", testEffectCheckSchemaUnmigrated, unmigrated},
		{"ColumnMissing", testEffectCheckSchemaColumnMissing, nil}}},
	{"Stats", []testCase{{"Empty", testStatsEmpty, nil}, {"Counts", testStatsCounts, nil}}},
	{"EnsureSchema", []testCase{{"NoSchema", testEnsureSchemaNoSchema, nil},
		{"Creates", testEnsureSchemaCreates, nil}}},
	{"MigrationLock", []testCase{{"Waits", testMigrationLockWaits, nil},
		{"PerPrefix", testMigrationLockPerPrefix, nil}}},
	{"TableSets", []testCase{{"Outbox", testTableSetsOutbox, nil}, {"Inbox", testTableSetsInbox, nil},
		{"PartitionLocks", testTableSetsLocks, nil}, {"SchemaQualified", testTableSetsSchemaQualified, nil}}},
}

// Run runs every case of the suite as a parallel subtest of t, each on every testdb target with a fresh
// database. The databases come from the TXBOX_* environment variables (see package testdb); without them the
// cases are skipped.
func Run(t *testing.T) {
	for _, g := range slices.Concat(suite, adminCases, partitionCases, fleetCases) {
		for _, c := range g.cases {
			t.Run(g.method+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				testdb.Run(t, func(t *testing.T, db *testdb.DB) { c.fn(t, newHarness(t, db)) }, c.opts...)
			})
		}
	}
}

// harness is one case's database and the Store of its default tables, with the plain-SQL helpers that check
// what the Store did.
type harness struct {
	db     *testdb.DB
	s      store.Store
	ctx    context.Context
	mysql  bool
	hw     int64 // highest outbox id newIDs has returned
	tokens int64 // the last claim token nextToken returned
}

func newHarness(t *testing.T, db *testdb.DB) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return &harness{db: db, s: newStore(t, db.Dialect, ""), ctx: ctx, mysql: db.Dialect.Name() == "mysql"}
}

func newStore(t *testing.T, d dialect.Dialect, prefix string) store.Store {
	t.Helper()
	tables, err := dialect.TablesFor(prefix)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.New(d, tables)
	if err != nil {
		t.Fatalf("store.New(%s, %q): %v", d.Name(), prefix, err)
	}
	return s
}

// migrated migrates the table set of prefix in the case's database and returns its Store.
func (h *harness) migrated(t *testing.T, prefix string) store.Store {
	t.Helper()
	if err := migrations.Up(h.ctx, h.db.DB.DB, h.db.Dialect, migrations.WithPrefix(prefix)); err != nil {
		t.Fatalf("migrate prefix %q: %v", prefix, err)
	}
	return newStore(t, h.db.Dialect, prefix)
}

// uniqueName is a fresh lowercase identifier starting with prefix.
func uniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// --- plain SQL ---

func (h *harness) tables() dialect.Tables { return h.s.Tables() }

func (h *harness) exec(t *testing.T, query string, args ...any) int64 {
	t.Helper()
	res, err := h.db.ExecContext(h.ctx, h.db.Rebind(query), args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		t.Fatalf("%s: rows affected: %v", query, err)
	}
	return n
}

func (h *harness) scan(t *testing.T, query string, args []any, dst ...any) {
	t.Helper()
	if err := h.db.QueryRowContext(h.ctx, h.db.Rebind(query), args...).Scan(dst...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// count counts the rows of table matching where ("" for all).
func (h *harness) count(t *testing.T, table, where string, args ...any) int {
	t.Helper()
	q := "SELECT COUNT(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	var n int
	h.scan(t, q, args, &n)
	return n
}

// ids returns the ids of table's rows matching where ("" for all), ascending.
func (h *harness) ids(t *testing.T, table, where string, args ...any) []int64 {
	t.Helper()
	q := "SELECT id FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	var out []int64
	if err := h.db.SelectContext(h.ctx, &out, h.db.Rebind(q+" ORDER BY id"), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// sinceMicros is an SQL expression: microseconds from the instant in col to now (negative when col is in the
// future).
func (h *harness) sinceMicros(col string) string {
	if h.mysql {
		return "TIMESTAMPDIFF(MICROSECOND, " + col + ", UTC_TIMESTAMP(6))"
	}
	return "(EXTRACT(EPOCH FROM clock_timestamp() - " + col + ") * 1000000)::bigint"
}

// setAgo sets col of the rows of table matching where (at least one) to now - ago, and returns how many rows
// it set.
func (h *harness) setAgo(t *testing.T, table, col string, ago time.Duration, where string, args ...any) int64 {
	t.Helper()
	expr := "UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND"
	if !h.mysql {
		expr = "now() - ?::bigint * INTERVAL '1 microsecond'"
	}
	n := h.exec(t, "UPDATE "+table+" SET "+col+" = "+expr+" WHERE "+where, append([]any{ago.Microseconds()}, args...)...)
	if n == 0 {
		t.Fatalf("set %s.%s of the rows where %s %v: no such row", table, col, where, args)
	}
	return n
}

// timeText is an SQL expression rendering the instant in col as UTC text with microseconds, for exact
// comparisons between tables.
func (h *harness) timeText(col string) string {
	if h.mysql {
		return "DATE_FORMAT(" + col + ", '%Y-%m-%d %H:%i:%s.%f')"
	}
	return "to_char(" + col + " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
}

// within fails unless d is in [lo, hi].
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s = %v, want between %v and %v", what, d, lo, hi)
	}
}

// recent fails unless at is between before and after, give or take the slack between the database's clock,
// the database's statement start and Go's clock.
func recent(t *testing.T, what string, at, before, after time.Time) {
	t.Helper()
	const slack = 2 * time.Second
	if at.Location() != time.UTC {
		t.Errorf("%s = %v: want UTC", what, at)
	}
	if at.Before(before.Add(-slack)) || at.After(after.Add(slack)) {
		t.Errorf("%s = %v, want between %v and %v", what, at, before, after)
	}
}

// --- transactions and connections ---

// begin starts a transaction that is rolled back at the end of the test unless committed.
func (h *harness) begin(t *testing.T) *sql.Tx {
	t.Helper()
	return h.beginIso(t, sql.LevelDefault)
}

// beginIso is begin with an isolation level.
func (h *harness) beginIso(t *testing.T, iso sql.IsolationLevel) *sql.Tx {
	t.Helper()
	tx, err := h.db.DB.DB.BeginTx(h.ctx, &sql.TxOptions{Isolation: iso})
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

func commit(t *testing.T, tx *sql.Tx) {
	t.Helper()
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func rollback(t *testing.T, tx *sql.Tx) {
	t.Helper()
	if err := tx.Rollback(); err != nil {
		t.Fatalf("rollback: %v", err)
	}
}

// conn takes a connection of the pool that is discarded (never handed back) at the end of the test.
func (h *harness) conn(t *testing.T) *sql.Conn {
	t.Helper()
	c, err := h.db.DB.DB.Conn(h.ctx)
	if err != nil {
		t.Fatalf("conn: %v", err)
	}
	t.Cleanup(func() { store.DiscardConn(c) })
	return c
}

// sessionID is the server's id of the session db runs on (a *sql.Conn or *sql.Tx).
func (h *harness) sessionID(t *testing.T, db store.DBTX) int64 {
	t.Helper()
	q := "SELECT pg_backend_pid()"
	if h.mysql {
		q = "SELECT CONNECTION_ID()"
	}
	var id int64
	if err := db.QueryRowContext(h.ctx, q).Scan(&id); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return id
}

// waitBlocked returns once session id is stuck in a statement, and fails the test if that does not happen
// within 30s. On PostgreSQL the session must wait for a lock (a row, transaction or advisory lock). On MySQL it
// must be executing a statement: the sessions the suite checks run nothing else, and MariaDB has no reliable
// view of lock waits (INNODB_TRX is a cache that is not refreshed while it is read more often than every 0.1s,
// so polling it keeps it stale; PROCESSLIST's state names the phase of the statement, not the wait).
func (h *harness) waitBlocked(t *testing.T, id int64) {
	t.Helper()
	q := "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock'"
	if h.mysql {
		q = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND COMMAND IN ('Query', 'Execute')"
	}
	poll(t, fmt.Sprintf("session %d to wait for a lock", id), func() bool {
		var n int
		h.scan(t, q, []any{id}, &n)
		return n > 0
	})
}

// poll calls cond every few milliseconds until it is true, and fails the test after 30s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// async runs f in a goroutine and returns a channel that delivers its result.
func async[T any](f func() T) <-chan T {
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	return ch
}

// await receives from ch, failing the test after 30s.
func await[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// pending fails the test if ch has delivered already: the operation should still be waiting.
func pending[T any](t *testing.T, what string, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s returned %+v while it should have been waiting", what, v)
	default:
	}
}

// --- JSON and bytes ---

// jsonEqual reports whether a and b are the same JSON document (PostgreSQL's jsonb normalises spacing and key
// order), or both nil.
func jsonEqual(a, b []byte) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func checkHeaders(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !jsonEqual(got, want) {
		t.Errorf("%s headers = %q, want %q", what, got, want)
	}
}

func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
	if got == nil && want != nil {
		t.Errorf("%s is nil, want non-nil %q", what, want)
	}
}

// isErr fails unless errors.Is(err, target).
func isErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one wrapping %q", what, err, target)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
