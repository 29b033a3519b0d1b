package dialect_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/txbox/txbox/dialect"
)

func TestParse(t *testing.T) {
	for name, want := range map[string]dialect.Dialect{
		"mysql": dialect.MySQL, "MariaDB": dialect.MySQL, "postgres": dialect.Postgres,
		"postgresql": dialect.Postgres, " PGX ": dialect.Postgres,
	} {
		got, err := dialect.Parse(name)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", name, got, err, want.Name())
		}
	}
	if _, err := dialect.Parse("sqlite"); err == nil || !strings.Contains(err.Error(), "sqlite") {
		t.Errorf("Parse(sqlite) error = %v, want one naming the input", err)
	}
}

func TestValidateIdent(t *testing.T) {
	good := []string{"txbox_outbox", "_t", "App.txbox_inbox", "t1", strings.Repeat("a", dialect.MaxIdentLen)}
	bad := []string{"", "1t", "a.b.c", "a.", ".a", "t-1", "t 1", "t;drop table x", `t"`, "t`", "é",
		strings.Repeat("a", dialect.MaxIdentLen+1)}
	for _, n := range good {
		if err := dialect.ValidateIdent(n); err != nil {
			t.Errorf("ValidateIdent(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := dialect.ValidateIdent(n); !errors.Is(err, dialect.ErrInvalidIdent) {
			t.Errorf("ValidateIdent(%q) = %v, want ErrInvalidIdent", n, err)
		}
	}
	if q, _ := dialect.MySQL.QuoteIdent("app.t"); q != "`app`.`t`" {
		t.Errorf("MySQL quote = %s", q)
	}
	if q, _ := dialect.Postgres.QuoteIdent("app.t"); q != `"app"."t"` {
		t.Errorf("Postgres quote = %s", q)
	}
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"k", "12345/payment", "order-1 ", strings.Repeat("x", dialect.MaxKeyBytes), "é/ü"} {
		if err := dialect.CheckKey(k); err != nil {
			t.Errorf("CheckKey(%q) = %v", k, err)
		}
	}
	for _, k := range []string{"", strings.Repeat("x", dialect.MaxKeyBytes+1), "bad\xff", "nul\x00"} {
		if err := dialect.CheckKey(k); !errors.Is(err, dialect.ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	// Multi-byte characters count in bytes: 200 × 3-byte runes = 600 bytes.
	if err := dialect.CheckKey(strings.Repeat("€", 200)); !errors.Is(err, dialect.ErrInvalidKey) {
		t.Errorf("600-byte key accepted")
	}
}

func TestUpsertSQL(t *testing.T) {
	u := dialect.Upsert{Table: "payments", Columns: []string{"order_id", "amount", "note"},
		Conflict: []string{"order_id"}, Update: []string{"amount", "note"}}
	cases := []struct {
		d    dialect.Dialect
		u    dialect.Upsert
		rows int
		want string
	}{
		{dialect.MySQL, u, 1, "INSERT INTO `payments` (`order_id`, `amount`, `note`) VALUES (?, ?, ?) " +
			"ON DUPLICATE KEY UPDATE `amount` = VALUES(`amount`), `note` = VALUES(`note`)"},
		{dialect.Postgres, u, 2, `INSERT INTO "payments" ("order_id", "amount", "note") VALUES ($1, $2, $3), ($4, $5, $6) ` +
			`ON CONFLICT ("order_id") DO UPDATE SET "amount" = EXCLUDED."amount", "note" = EXCLUDED."note"`},
		{dialect.MySQL, dialect.Upsert{Table: "p", Columns: []string{"a", "b"}, Conflict: []string{"a"}}, 1,
			"INSERT INTO `p` (`a`, `b`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `a` = `a`"},
		{dialect.Postgres, dialect.Upsert{Table: "s.p", Columns: []string{"a", "b"}, Conflict: []string{"a"}}, 1,
			`INSERT INTO "s"."p" ("a", "b") VALUES ($1, $2) ON CONFLICT ("a") DO NOTHING`},
	}
	for _, c := range cases {
		got, err := c.d.UpsertSQL(c.u, c.rows)
		if err != nil || got != c.want {
			t.Errorf("%s UpsertSQL:\n got %s (%v)\nwant %s", c.d.Name(), got, err, c.want)
		}
	}
}

// failDB is a DBTX that fails the test when any statement reaches it.
type failDB struct{ t *testing.T }

func (f failDB) ExecContext(context.Context, string, ...any) (sql.Result, error) {
	f.t.Fatal("SQL ran despite invalid input")
	return nil, nil
}
func (f failDB) QueryContext(context.Context, string, ...any) (*sql.Rows, error) {
	f.t.Fatal("SQL ran despite invalid input")
	return nil, nil
}
func (f failDB) QueryRowContext(context.Context, string, ...any) *sql.Row {
	f.t.Fatal("SQL ran despite invalid input")
	return nil
}

func TestUpsertRefusesBadInputBeforeSQL(t *testing.T) {
	bad := []dialect.Upsert{
		{Table: "payments; DROP TABLE orders", Columns: []string{"a"}, Conflict: []string{"a"}},
		{Table: "payments", Columns: []string{"a", "b` = 1; --"}, Conflict: []string{"a"}},
		{Table: "payments", Columns: []string{"a"}, Conflict: []string{"z"}},
		{Table: "payments", Columns: []string{"a", "a"}, Conflict: []string{"a"}},
		{Table: "payments", Columns: []string{"a"}},
		{Table: "payments", Conflict: []string{"a"}},
		{Table: "payments", Columns: []string{"a"}, Conflict: []string{"a"}, Update: []string{"b"}},
	}
	for _, d := range []dialect.Dialect{dialect.MySQL, dialect.Postgres} {
		for _, u := range bad {
			args := make([]any, len(u.Columns))
			if _, err := u.Exec(context.Background(), failDB{t}, d, args...); err == nil {
				t.Errorf("%s: %+v accepted", d.Name(), u)
			}
		}
	}
	_, err := dialect.Upsert{Table: "x;y", Columns: []string{"a"}, Conflict: []string{"a"}}.
		Exec(context.Background(), failDB{t}, dialect.MySQL, 1)
	if !errors.Is(err, dialect.ErrInvalidIdent) {
		t.Errorf("bad table name error = %v, want ErrInvalidIdent", err)
	}
}
