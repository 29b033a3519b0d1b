package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/txbox/txbox/dialect"
)

// Every DSN form the three drivers accept (go-sql-driver/mysql; lib/pq's and pgx's URL and keyword/value forms):
// what the CLI says about it names the host, user and database and never the password, and the password is
// known to the scrubber in the spellings drivers may show it in.
func TestDSNTargetNeverShowsThePassword(t *testing.T) {
	cases := []struct {
		d        dialect.Dialect
		dsn      string
		password string // as the server receives it
		where    string // "" when the DSN does not parse
	}{
		{dialect.MySQL, "app:S3cret-pw@tcp(127.0.0.1:3306)/orders", "S3cret-pw", "app@tcp(127.0.0.1:3306)/orders"},
		{dialect.MySQL, "app:S3cret-pw@tcp(127.0.0.1:3306)/orders?parseTime=true&interpolateParams=true", "S3cret-pw", "app@tcp(127.0.0.1:3306)/orders"},
		{dialect.MySQL, "app:p@ss:w@rd!@tcp(db.internal:3306)/orders", "p@ss:w@rd!", "app@tcp(db.internal:3306)/orders"},
		{dialect.MySQL, "app:S3cret-pw@/orders", "S3cret-pw", "app@tcp(127.0.0.1:3306)/orders"},
		{dialect.MySQL, "app:S3cret-pw@unix(/run/mysqld/mysqld.sock)/orders", "S3cret-pw", "app@unix(/run/mysqld/mysqld.sock)/orders"},
		{dialect.MySQL, "app:S3cret-pw@tcp([::1]:3306)/orders", "S3cret-pw", "app@tcp([::1]:3306)/orders"},
		{dialect.MySQL, "app:S3cret-pw@127.0.0.1:3306/orders", "S3cret-pw", ""},    // forgot tcp(...)
		{dialect.MySQL, "mysql://app:S3cret-pw@127.0.0.1/orders", "S3cret-pw", ""}, // a URL: not this driver's form
		{dialect.MySQL, "app:S3cret-pw@tcp(127.0.0.1:3306/orders", "S3cret-pw", ""},
		{dialect.Postgres, "postgres://app:S3cret-pw@127.0.0.1:5432/orders?sslmode=disable", "S3cret-pw", "app@127.0.0.1:5432/orders"},
		{dialect.Postgres, "postgresql://app:S3cr%40t%20pw@db.internal/orders", "S3cr@t pw", "app@db.internal:5432/orders"},
		{dialect.Postgres, "postgres://app@127.0.0.1/orders?password=S3cret-pw&sslmode=disable", "S3cret-pw", "app@127.0.0.1:5432/orders"},
		{dialect.Postgres, "postgres://127.0.0.1/orders?user=app&password=S3cr%26t&sslmode=disable", "S3cr&t", "app@127.0.0.1:5432/orders"},
		{dialect.Postgres, "postgres://app:S3cret-pw@10.0.0.1:5432,10.0.0.2:5433/orders", "S3cret-pw", "app@10.0.0.1:5432/orders"},
		{dialect.Postgres, "host=127.0.0.1 port=5432 user=app password=S3cret-pw dbname=orders sslmode=disable", "S3cret-pw", "app@127.0.0.1:5432/orders"},
		{dialect.Postgres, `host=127.0.0.1 user=app password='S3 cr\'et' dbname=orders`, "S3 cr'et", "app@127.0.0.1:5432/orders"},
		{dialect.Postgres, `host=127.0.0.1 user=app password = S3cret-pw dbname=orders`, "S3cret-pw", "app@127.0.0.1:5432/orders"},
		{dialect.Postgres, "postgres://app:S3cret-pw@127.0.0.1:notaport/orders", "S3cret-pw", ""},
		{dialect.Postgres, "host=127.0.0.1 user=app password='S3cret-pw", "S3cret-pw", ""},
		{dialect.Postgres, "postgres://app:S3cret-pw@127.0.0.1/orders?sslpassword=K3y-pass&sslmode=disable", "S3cret-pw", "app@127.0.0.1:5432/orders"},
	}
	for _, c := range cases {
		t.Run(c.d.Name()+" "+c.dsn, func(t *testing.T) {
			t.Setenv("PGPASSWORD", "")
			t.Setenv("PGPASSFILE", "/nonexistent")
			where, secrets, err := dsnTarget(c.d, c.dsn)
			var s scrubber
			s.add(secrets...)
			shown := where
			if err != nil {
				shown = err.Error()
			}
			if strings.Contains(shown, c.password) || strings.Contains(shown, "S3") || strings.Contains(shown, "K3y") {
				t.Fatalf("the CLI would show %q", shown)
			}
			if c.where == "" {
				if err == nil {
					t.Fatalf("parsed as %q, want an error", where)
				}
				return
			}
			if err != nil || where != c.where {
				t.Fatalf("dsnTarget = %q, %v; want %q", where, err, c.where)
			}
			// Text a driver or a log record passes on is scrubbed, raw or escaped.
			for _, text := range []string{c.dsn, "auth failed for " + c.password, fmt.Sprint(errors.New(c.password))} {
				if got := s.text(text); strings.Contains(got, c.password) || strings.Contains(got, "S3") ||
					strings.Contains(got, "K3y") {
					t.Errorf("scrubbed %q to %q", text, got)
				}
			}
		})
	}
}

// A scrubbed error still matches what it wraps.
func TestScrubbedErrorUnwraps(t *testing.T) {
	var s scrubber
	s.add("hunter2")
	base := errors.New("login failed: password hunter2 rejected")
	err := fmt.Errorf("cannot reach it: %w", s.error(base))
	if !errors.Is(err, base) || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), mask) {
		t.Fatalf("%v", err)
	}
}
