package dialect_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Keys that differ only in case or trailing spaces must be distinct rows, on the real schema.
func TestKeysAreByteExact(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		keys := []string{"Order-1", "order-1", "order-1 ", "order-1  ", "ORDER-1"}
		ins := db.Rebind("INSERT INTO txbox_inbox (consumer, msg_key, fingerprint, received_at) VALUES (?, ?, ?, ?)")
		for _, k := range keys {
			if _, err := db.ExecContext(ctx, ins, "c", k, make([]byte, 32), time.Now().UTC()); err != nil {
				t.Fatalf("insert %q: %v", k, err)
			}
		}
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM txbox_inbox").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != len(keys) {
			t.Fatalf("%d rows for %d distinct keys", n, len(keys))
		}
		for _, k := range keys {
			var got []string
			if err := db.SelectContext(ctx, &got, db.Rebind("SELECT msg_key FROM txbox_inbox WHERE msg_key = ?"), k); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != k {
				t.Errorf("lookup %q found %q", k, got)
			}
		}
		// The same key twice is a duplicate, classified as such.
		_, err := db.ExecContext(ctx, ins, "c", "order-1 ", make([]byte, 32), time.Now().UTC())
		if !errors.Is(db.Dialect.InterpretError(err), dialect.ErrDuplicateKey) {
			t.Errorf("second insert of the same key: %v, want ErrDuplicateKey", err)
		}
	})
}

// An over-long key is refused by CheckKey before SQL; the schema would not store it either way, and on MySQL
// without strict mode it would be silently truncated, which is why the check happens in Go.
func TestOverlongKeyNeverTruncated(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		long := strings.Repeat("k", dialect.MaxKeyBytes+1)
		if err := dialect.CheckKey(long); !errors.Is(err, dialect.ErrInvalidKey) {
			t.Fatalf("CheckKey accepted a %d-byte key", len(long))
		}
		ctx := context.Background()
		ins := db.Rebind("INSERT INTO txbox_inbox (consumer, msg_key, fingerprint, received_at) VALUES (?, ?, ?, ?)")
		if db.Dialect == dialect.Postgres {
			if _, err := db.ExecContext(ctx, ins, "c", long, make([]byte, 32), time.Now()); err == nil {
				t.Fatal("PostgreSQL stored an over-long key")
			}
			return
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = ''"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, ins, "c", long, make([]byte, 32), time.Now().UTC()); err != nil {
			t.Fatalf("non-strict insert: %v", err)
		}
		var stored int
		if err := conn.QueryRowContext(ctx, "SELECT LENGTH(msg_key) FROM txbox_inbox").Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != dialect.MaxKeyBytes {
			t.Fatalf("non-strict MySQL stored %d bytes; this test documents that it truncates to %d", stored, dialect.MaxKeyBytes)
		}
	})
}

func TestUpsertRunsAndIsIdempotent(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, "CREATE TABLE payments (order_id BIGINT PRIMARY KEY, amount BIGINT NOT NULL, note VARCHAR(50) NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		upd := dialect.Upsert{Table: "payments", Columns: []string{"order_id", "amount", "note"},
			Conflict: []string{"order_id"}, Update: []string{"amount", "note"}}
		keep := dialect.Upsert{Table: "payments", Columns: []string{"order_id", "amount", "note"},
			Conflict: []string{"order_id"}}
		run := func(u dialect.Upsert, args ...any) {
			t.Helper()
			tx, err := db.BeginTxx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := u.Exec(ctx, tx, db.Dialect, args...); err != nil {
				_ = tx.Rollback()
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			run(upd, 1, 100, "first")
		}
		run(upd, 1, 150, "second")
		for range 3 {
			run(keep, 2, 200, "kept")
		}
		run(keep, 2, 999, "ignored")
		type row struct {
			OrderID int64  `db:"order_id"`
			Amount  int64  `db:"amount"`
			Note    string `db:"note"`
		}
		var rows []row
		if err := db.SelectContext(ctx, &rows, "SELECT order_id, amount, note FROM payments ORDER BY order_id"); err != nil {
			t.Fatal(err)
		}
		want := []row{{1, 150, "second"}, {2, 200, "kept"}}
		if len(rows) != 2 || rows[0] != want[0] || rows[1] != want[1] {
			t.Fatalf("rows = %+v, want %+v", rows, want)
		}
		// Multi-row form.
		q, err := db.Dialect.UpsertSQL(upd, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, q, 2, 201, "multi", 3, 300, "multi"); err != nil {
			t.Fatalf("multi-row upsert: %v", err)
		}
		var sum int64
		if err := db.QueryRowContext(ctx, "SELECT SUM(amount) FROM payments").Scan(&sum); err != nil {
			t.Fatal(err)
		}
		if sum != 150+201+300 {
			t.Fatalf("sum after multi-row upsert = %d", sum)
		}
	})
}

func TestClassifyRealErrors(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		d := db.Dialect
		_, err := db.ExecContext(ctx, "SELECT * FROM no_such_table")
		if !errors.Is(d.InterpretError(err), dialect.ErrSchemaMissing) {
			t.Errorf("missing table: %v (kind %d), want ErrSchemaMissing", err, dialect.Classify(err))
		}
		if _, err := db.ExecContext(ctx, "CREATE TABLE locks (id INT PRIMARY KEY, v INT NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO locks VALUES (1, 0), (2, 0)"); err != nil {
			t.Fatal(err)
		}
		if err := deadlock(ctx, db.DB, d); !errors.Is(d.InterpretError(err), dialect.ErrRetryable) {
			t.Errorf("deadlock: %v (kind %d), want ErrRetryable", err, dialect.Classify(err))
		}
		// Nobody listens on port 1 of loopback: refused at once.
		dsn := "txbox:txbox@tcp(127.0.0.1:1)/txbox"
		if d == dialect.Postgres {
			dsn = "postgres://txbox:txbox@127.0.0.1:1/txbox?sslmode=disable&connect_timeout=2"
		}
		other, err := sql.Open(db.Target.Driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		err = other.PingContext(ctx)
		if !errors.Is(d.InterpretError(err), dialect.ErrConnection) {
			t.Errorf("refused connection: %v (kind %d), want ErrConnection", err, dialect.Classify(err))
		}
		if dialect.Classify(nil) != dialect.KindOther || d.InterpretError(nil) != nil {
			t.Error("nil error classified")
		}
	})
}

// deadlock makes two transactions lock rows 1 and 2 in opposite orders and returns the error of the one the
// database picked as the victim.
func deadlock(ctx context.Context, db *sqlx.DB, d dialect.Dialect) error {
	upd := d.Rebind("UPDATE locks SET v = v + 1 WHERE id = ?")
	t1, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer t1.Rollback()
	t2, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer t2.Rollback()
	if _, err := t1.ExecContext(ctx, upd, 1); err != nil {
		return err
	}
	if _, err := t2.ExecContext(ctx, upd, 2); err != nil {
		return err
	}
	errs := make(chan error, 2)
	go func() {
		_, err := t1.ExecContext(ctx, upd, 2)
		if err != nil {
			_ = t1.Rollback() // the victim releases its locks so the other can finish
		}
		errs <- err
	}()
	go func() {
		_, err := t2.ExecContext(ctx, upd, 1)
		if err != nil {
			_ = t2.Rollback()
		}
		errs <- err
	}()
	e1, e2 := <-errs, <-errs
	if e1 != nil {
		return e1
	}
	if e2 != nil {
		return e2
	}
	return errors.New("no deadlock detected")
}
