package migrations_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/migrations"
)

func TestMain(m *testing.M) { testdb.Main(m) }

var txboxTables = []string{"txbox_outbox", "txbox_outbox_dead", "txbox_outbox_published", "txbox_inbox", "txbox_inbox_attempts", "txbox_inbox_dead"}

func tableExists(t *testing.T, db *testdb.DB, name string) bool {
	t.Helper()
	var n int
	q := "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
	if db.Dialect == dialect.Postgres {
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
	}
	if err := db.QueryRowContext(context.Background(), q, name).Scan(&n); err != nil {
		t.Fatalf("look up table %s: %v", name, err)
	}
	return n == 1
}

func TestUpIsIdempotentAndComplete(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		// testdb already ran Up once; a second run must change nothing and fail nothing.
		if err := migrations.Up(ctx, db.DB.DB, db.Dialect); err != nil {
			t.Fatalf("second Up: %v", err)
		}
		for _, tb := range txboxTables {
			if !tableExists(t, db, tb) {
				t.Errorf("table %s missing after Up", tb)
			}
		}
		st, err := migrations.Status(ctx, db.DB.DB, db.Dialect)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) < 2 {
			t.Fatalf("Status lists %d migrations, want at least 2", len(st))
		}
		for _, s := range st {
			if !s.Applied {
				t.Errorf("migration %d (%s) not applied: %+v", s.Version, s.Name, s)
			}
		}
		if err := migrations.Check(ctx, db.DB.DB, db.Dialect); err != nil {
			t.Errorf("Check after Up: %v", err)
		}
		if !tableExists(t, db, "txbox_migrations") {
			t.Errorf("version table txbox_migrations missing")
		}
		if tableExists(t, db, "goose_db_version") {
			t.Errorf("goose's default version table was created; txbox must use only txbox_migrations")
		}
	})
}

func TestUpDownUp(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		if err := migrations.DownTo(ctx, db.DB.DB, db.Dialect, 0); err != nil {
			t.Fatalf("DownTo(0): %v", err)
		}
		for _, tb := range txboxTables {
			if tableExists(t, db, tb) {
				t.Errorf("table %s still there after DownTo(0)", tb)
			}
		}
		if err := migrations.Check(ctx, db.DB.DB, db.Dialect); !errors.Is(err, migrations.ErrNotMigrated) {
			t.Errorf("Check after DownTo(0) = %v, want ErrNotMigrated", err)
		}
		if err := migrations.Up(ctx, db.DB.DB, db.Dialect); err != nil {
			t.Fatalf("Up after DownTo(0): %v", err)
		}
		for _, tb := range txboxTables {
			if !tableExists(t, db, tb) {
				t.Errorf("table %s missing after Up → Down → Up", tb)
			}
		}
	})
}

func TestApplicationGooseTableUntouched(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		// An application's own goose history, in goose's default table.
		ddl := "CREATE TABLE goose_db_version (id INT PRIMARY KEY, version_id BIGINT NOT NULL, is_applied BOOLEAN NOT NULL)"
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind("INSERT INTO goose_db_version VALUES (1, 42, TRUE)")); err != nil {
			t.Fatal(err)
		}
		if err := migrations.DownTo(ctx, db.DB.DB, db.Dialect, 0); err != nil {
			t.Fatal(err)
		}
		if err := migrations.Up(ctx, db.DB.DB, db.Dialect); err != nil {
			t.Fatal(err)
		}
		var n, v int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(version_id) FROM goose_db_version").Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != 1 || v != 42 {
			t.Errorf("application's goose_db_version changed: %d rows, max version %d; want 1 row, 42", n, v)
		}
	})
}

func TestConcurrentUp(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() { errs <- migrations.Up(ctx, db.DB.DB, db.Dialect) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent Up: %v", err)
			}
		}
	}, testdb.Unmigrated())
}

func TestCheckUnmigrated(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		err := migrations.Check(context.Background(), db.DB.DB, db.Dialect)
		if !errors.Is(err, migrations.ErrNotMigrated) {
			t.Fatalf("Check on an empty database = %v, want ErrNotMigrated", err)
		}
	}, testdb.Unmigrated())
}

func TestFiles(t *testing.T) {
	for _, d := range []dialect.Dialect{dialect.MySQL, dialect.Postgres} {
		files, err := migrations.Files(d)
		if err != nil {
			t.Fatal(err)
		}
		names, err := fs.Glob(files, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		if len(names) < 2 || names[0] != "00001_outbox.sql" {
			t.Errorf("%s: files %v, want 00001_outbox.sql first", d.Name(), names)
		}
	}
}

// Files renders every name from the prefix: no default table name is left in the SQL of another installation,
// and a bad prefix is refused before anything is rendered.
func TestFilesRenderThePrefix(t *testing.T) {
	for _, d := range []dialect.Dialect{dialect.MySQL, dialect.Postgres} {
		files, err := migrations.Files(d, migrations.WithPrefix("billing.shop"))
		if err != nil {
			t.Fatal(err)
		}
		names, _ := fs.Glob(files, "*.sql")
		for _, n := range names {
			b, err := fs.ReadFile(files, n)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if strings.Contains(s, "{{") || strings.Contains(s, "txbox_") {
				t.Errorf("%s %s still names txbox_ or a template:\n%s", d.Name(), n, s)
			}
			if !strings.Contains(s, "billing") || !strings.Contains(s, "shop_") {
				t.Errorf("%s %s does not use the prefix billing.shop:\n%s", d.Name(), n, s)
			}
		}
		if _, err := migrations.Files(d, migrations.WithPrefix("Bad-Prefix")); !errors.Is(err, dialect.ErrInvalidIdent) {
			t.Errorf("%s: Files(Bad-Prefix) = %v, want ErrInvalidIdent", d.Name(), err)
		}
	}
}

// Two installations in one database: each has its own tables and version table, and migrating one down leaves
// the other untouched. A schema-qualified prefix gets its schema (MySQL: database) created.
func TestPrefixesAreSeparateInstallations(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		if err := migrations.Up(ctx, db.DB.DB, db.Dialect, migrations.WithPrefix("alt")); err != nil {
			t.Fatalf("Up alt: %v", err)
		}
		for _, tb := range txboxTables {
			if alt := "alt" + strings.TrimPrefix(tb, "txbox"); !tableExists(t, db, alt) {
				t.Errorf("%s missing after Up with prefix alt", alt)
			}
		}
		if !tableExists(t, db, "alt_migrations") {
			t.Error("alt_migrations missing")
		}
		if err := migrations.DownTo(ctx, db.DB.DB, db.Dialect, 0, migrations.WithPrefix("alt")); err != nil {
			t.Fatalf("DownTo alt: %v", err)
		}
		for _, tb := range txboxTables {
			if tableExists(t, db, "alt"+strings.TrimPrefix(tb, "txbox")) {
				t.Errorf("alt%s still there after DownTo(0) of alt", strings.TrimPrefix(tb, "txbox"))
			}
			if !tableExists(t, db, tb) {
				t.Errorf("%s of the default installation gone after DownTo(0) of alt", tb)
			}
		}
		if err := migrations.Check(ctx, db.DB.DB, db.Dialect); err != nil {
			t.Errorf("default installation after alt went down: %v", err)
		}

		schema := db.Name + "_s"
		t.Cleanup(func() {
			stmt := "DROP DATABASE IF EXISTS " + schema
			if db.Dialect == dialect.Postgres {
				stmt = "DROP SCHEMA IF EXISTS " + schema + " CASCADE"
			}
			if _, err := db.ExecContext(context.Background(), stmt); err != nil {
				t.Errorf("drop %s: %v", schema, err)
			}
		})
		if err := migrations.Up(ctx, db.DB.DB, db.Dialect, migrations.WithPrefix(schema+".app")); err != nil {
			t.Fatalf("Up %s.app: %v", schema, err)
		}
		if err := migrations.Check(ctx, db.DB.DB, db.Dialect, migrations.WithPrefix(schema+".app")); err != nil {
			t.Errorf("Check %s.app: %v", schema, err)
		}
		var n int
		if err := db.GetContext(ctx, &n, "SELECT COUNT(*) FROM "+schema+".app_outbox"); err != nil || n != 0 {
			t.Errorf("%s.app_outbox: %d rows, %v", schema, n, err)
		}
	})
}

// layoutOf reads the layout migration 00007 recorded for a table.
func layoutOf(t *testing.T, db *testdb.DB, name string) int {
	t.Helper()
	var mode int
	if err := db.QueryRowContext(context.Background(), db.Rebind("SELECT mode FROM txbox_partitions WHERE name = ?"), name).Scan(&mode); err != nil {
		t.Fatalf("layout of %s: %v", name, err)
	}
	return mode
}

// WithPartitioned creates a new installation partitioned (both tables), is ignored for an existing one, and
// goes down and up again.
func TestPartitionedNewInstallation(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		if err := migrations.Up(ctx, db.DB.DB, db.Dialect, migrations.WithPartitioned(true)); err != nil {
			t.Fatal(err)
		}
		if layoutOf(t, db, "inbox_keys") != 2 || layoutOf(t, db, "outbox_published") != 2 {
			t.Fatal("a new installation created with WithPartitioned is not partitioned")
		}
		// The published table takes rows by publishing time, into its catch-all while it has no partition.
		ins := db.Rebind("INSERT INTO txbox_outbox_published (id, part, topic, msg_key, payload, attempts, created_at, published_at) " +
			"VALUES (1, -1, 't', 'k', ?, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
		if _, err := db.ExecContext(ctx, ins, []byte("p")); err != nil {
			t.Fatalf("insert into the partitioned published table: %v", err)
		}
		if err := migrations.DownTo(ctx, db.DB.DB, db.Dialect, 6, migrations.WithPartitioned(true)); err != nil {
			t.Fatalf("down to 6: %v", err)
		}
		if tableExists(t, db, "txbox_inbox_keys") || !tableExists(t, db, "txbox_outbox_published") {
			t.Fatal("down to 6 left the keys table or lost the published table")
		}
		// Up again on an existing installation: the option is ignored, the layout is the unpartitioned one.
		if err := migrations.Up(ctx, db.DB.DB, db.Dialect, migrations.WithPartitioned(true)); err != nil {
			t.Fatal(err)
		}
		if layoutOf(t, db, "inbox_keys") != 0 || layoutOf(t, db, "outbox_published") != 0 {
			t.Fatal("WithPartitioned changed the layout of an existing installation")
		}
		if err := migrations.Check(ctx, db.DB.DB, db.Dialect); err != nil {
			t.Fatal(err)
		}
	}, testdb.Unmigrated())
}
