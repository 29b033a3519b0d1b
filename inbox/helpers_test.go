package inbox_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/effectstest"
	"github.com/txbox/txbox/internal/testdb"
)

func TestMain(m *testing.M) { effectstest.MaybeChild(); testdb.Main(m) }

// newInbox returns an Inbox on db for consumer, with cfg's other fields.
func newInbox(t testing.TB, db *testdb.DB, consumer string, cfg inbox.Config) *inbox.Inbox {
	t.Helper()
	cfg.Dialect, cfg.Consumer = db.Dialect, consumer
	ib, err := inbox.New(db.DB, cfg)
	if err != nil {
		t.Fatalf("inbox.New: %v", err)
	}
	return ib
}

// unreachableDB is a MySQL pool that never connects (port 1): for checks that must refuse before any SQL runs.
func unreachableDB(t testing.TB) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("mysql", "u:p@tcp(127.0.0.1:1)/x")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// createEffects creates the table test handlers write their effects to: one row per committed handler run, so
// that a second committed effect for a key shows up as a second row (no unique key hides it).
func createEffects(t testing.TB, db *testdb.DB) {
	t.Helper()
	ddl := "CREATE TABLE effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, consumer VARBINARY(128) NOT NULL, " +
		"k VARBINARY(600) NOT NULL, KEY (consumer, k)) ENGINE = InnoDB"
	if db.Dialect == dialect.Postgres {
		ddl = `CREATE TABLE effects (id BIGSERIAL PRIMARY KEY, consumer TEXT COLLATE "C" NOT NULL, k TEXT COLLATE "C" NOT NULL)`
	}
	if _, err := db.ExecContext(context.Background(), ddl); err != nil {
		t.Fatalf("create effects: %v", err)
	}
}

// effectHandler returns a handler that inserts one effect row for (consumer, key) in the inbox's transaction.
func effectHandler(db *testdb.DB, consumer, key string) inbox.Handler {
	q := db.Rebind("INSERT INTO effects (consumer, k) VALUES (?, ?)")
	return func(ctx context.Context, tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, q, consumer, key)
		return err
	}
}

// effects counts the effect rows of (consumer, key).
func effects(t testing.TB, db *testdb.DB, consumer, key string) int {
	t.Helper()
	var n int
	q := db.Rebind("SELECT COUNT(*) FROM effects WHERE consumer = ? AND k = ?")
	if err := db.QueryRowContext(context.Background(), q, consumer, key).Scan(&n); err != nil {
		t.Fatalf("count effects: %v", err)
	}
	return n
}

// countKeys counts the distinct (consumer, key) pairs recorded in the table the installation's layout records
// keys in (a partitioned one holds a key once per bucket it was recorded in) that match cond, written with '?'
// placeholders.
func countKeys(t testing.TB, db *testdb.DB, cond string, args ...any) int {
	t.Helper()
	return countRows(t, db, "SELECT COUNT(*) FROM (SELECT DISTINCT consumer, msg_key FROM "+db.InboxKeys+" WHERE "+cond+") AS k", args...)
}

// countRows runs a COUNT(*) query written with '?' placeholders.
func countRows(t testing.TB, db *testdb.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), db.Rebind(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// waitBlockedOnMe polls until at least n other sessions wait for a lock the handler's transaction tx holds,
// directly or queued behind another waiter, or fails at the deadline. It proves that concurrent deliveries of
// a key are really blocked on the key while the first one is in its handler. It polls through the pool, not
// tx: inside a transaction both servers may show a frozen view of their activity tables.
func waitBlockedOnMe(ctx context.Context, db *testdb.DB, tx *sqlx.Tx, n int) error {
	// Every test has its own MySQL database, and only the key under test is inserted while its first
	// delivery is in the handler, so a session executing the claim's INSERT is a session waiting for the key.
	// (INNODB_TRX would say so directly, but MariaDB 10.11 under load often lists such waiters as running or
	// leaves them out.)
	q := "SELECT COUNT(*) FROM information_schema.PROCESSLIST " +
		"WHERE DB = DATABASE() AND (INFO LIKE 'INSERT INTO `txbox_inbox`%' OR INFO LIKE 'CALL `txbox_inbox_keys_claim`%' " +
		"OR INFO LIKE 'INSERT INTO `txbox_inbox_keys`%') AND ID <> ?"
	me := "SELECT CONNECTION_ID()"
	if db.Dialect == dialect.Postgres {
		// ON CONFLICT can wait on the speculative insertion of the waiter before it: follow the chain.
		q = "WITH RECURSIVE w(pid) AS (" +
			"SELECT pid FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid)) " +
			"UNION SELECT a.pid FROM pg_stat_activity a JOIN w ON w.pid = ANY(pg_blocking_pids(a.pid))" +
			") SELECT COUNT(*) FROM w"
		me = "SELECT pg_backend_pid()"
	}
	var id int
	if err := tx.QueryRowContext(ctx, me).Scan(&id); err != nil {
		return fmt.Errorf("session id: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int
		if err := db.QueryRowContext(ctx, q, id).Scan(&got); err != nil {
			return fmt.Errorf("count blocked sessions: %w", err)
		}
		if got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d sessions blocked on the key after 30s, want %d; sessions: %s", got, n, sessions(ctx, db))
		}
		time.Sleep(5 * time.Millisecond) // polling the database, not waiting for background work
	}
}

// sessions describes the test database's sessions, for failure messages.
func sessions(ctx context.Context, db *testdb.DB) string {
	q := "SELECT CONCAT(p.ID, ' ', COALESCE(p.COMMAND, ''), ' ', COALESCE(p.STATE, ''), ' ', " +
		"COALESCE(t.trx_state, 'no trx'), ' ', LEFT(COALESCE(p.INFO, ''), 40)) FROM information_schema.PROCESSLIST p " +
		"LEFT JOIN information_schema.INNODB_TRX t ON p.ID = t.trx_mysql_thread_id WHERE p.DB = DATABASE()"
	if db.Dialect == dialect.Postgres {
		q = "SELECT pid || ' ' || COALESCE(state, '') || ' ' || COALESCE(wait_event_type, '') || ' ' || " +
			"pg_blocking_pids(pid)::text || ' ' || LEFT(query, 40) FROM pg_stat_activity WHERE datname = current_database()"
	}
	var out []string
	if err := db.SelectContext(ctx, &out, q); err != nil {
		return err.Error()
	}
	return strings.Join(out, "; ")
}

// nop is a handler that writes nothing.
var nop inbox.Handler = func(context.Context, *sqlx.Tx) error { return nil }

// traffic runs Process in the background for tests of what runs beside it (a purge, a partition drop): each
// round records a new key, during-<i>, and redelivers the keys redeliver(i) names, which must be Duplicate.
type traffic struct {
	stop   chan struct{}
	errc   chan error
	rounds atomic.Int32 // rounds completed
}

func startTraffic(ctx context.Context, ib *inbox.Inbox, what string, handler func(key string) inbox.Handler,
	redeliver func(i int) []string) *traffic {
	tr := &traffic{stop: make(chan struct{}), errc: make(chan error, 1)}
	go func() {
		defer close(tr.errc)
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			default:
			}
			key := fmt.Sprintf("during-%d", i)
			if res, err := ib.Process(ctx, inbox.Delivery{Key: key, Payload: []byte("p")}, handler(key)); err != nil || res != inbox.Processed {
				tr.errc <- fmt.Errorf("process %s %s: %v, %v", key, what, res, err)
				return
			}
			for _, k := range redeliver(i) {
				if res, err := ib.Process(ctx, inbox.Delivery{Key: k, Payload: []byte("p")}, handler(k)); err != nil || res != inbox.Duplicate {
					tr.errc <- fmt.Errorf("redeliver %s %s: %v, %v", k, what, res, err)
					return
				}
			}
			tr.rounds.Add(1)
		}
	}()
	return tr
}

// end stops the worker and returns its first error.
func (tr *traffic) end() error {
	close(tr.stop)
	return <-tr.errc
}
