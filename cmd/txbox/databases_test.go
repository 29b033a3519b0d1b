package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/txbox/txbox/dialect"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestParseDatabases(t *testing.T) {
	file := `
# two services
databases:
  - name: orders
    dialect: mariadb
    dsn: ${ORDERS_USER}:${ORDERS_PASSWORD}@tcp(127.0.0.1:3306)/orders
  - name: payments
    dialect: postgres
    dsn: postgres://app:pa$$word$x@127.0.0.1:5432/payments?sslmode=disable
    prefix: billing.txbox
`
	got, err := parseDatabases([]byte(file), "f.yaml", "txbox", env(map[string]string{"ORDERS_USER": "app", "ORDERS_PASSWORD": "s3cr$t"}))
	if err != nil {
		t.Fatal(err)
	}
	want := []databaseEntry{
		{Name: "orders", Dialect: dialect.MySQL, DSN: "app:s3cr$t@tcp(127.0.0.1:3306)/orders", Prefix: "txbox"},
		{Name: "payments", Dialect: dialect.Postgres, DSN: "postgres://app:pa$word$x@127.0.0.1:5432/payments?sslmode=disable",
			Prefix: "billing.txbox"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Every bad file is a usage error that names what is wrong — and never holds an expanded secret.
func TestParseDatabasesErrors(t *testing.T) {
	secret := "hunter2-secret"
	vars := env(map[string]string{"PW": secret})
	for name, tc := range map[string]struct{ file, want string }{
		"empty":           {"", "no databases"},
		"no list":         {"databases: []", "no databases"},
		"unknown field":   {"databases:\n  - name: a\n    dialect: mysql\n    dsn: x\n    prefx: y", "prefx"},
		"bad name":        {"databases:\n  - name: a b\n    dialect: mysql\n    dsn: x", `name "a b"`},
		"twice":           {"databases:\n  - {name: a, dialect: mysql, dsn: x}\n  - {name: a, dialect: mysql, dsn: y}", "used twice"},
		"bad dialect":     {"databases:\n  - {name: a, dialect: oracle, dsn: x}", "oracle"},
		"no dsn":          {"databases:\n  - {name: a, dialect: mysql}", "database a: no dsn"},
		"unset variable":  {"databases:\n  - {name: a, dialect: mysql, dsn: 'u:${PW}@tcp(h)/${MISSING}'}", "MISSING is not set"},
		"bad variable":    {"databases:\n  - {name: a, dialect: mysql, dsn: 'u:${PW}@${1X}'}", "${1X}"},
		"unterminated":    {"databases:\n  - {name: a, dialect: mysql, dsn: 'u:${PW}@${X'}", "unterminated"},
		"bad prefix":      {"databases:\n  - {name: a, dialect: mysql, dsn: 'u:${PW}@x', prefix: Bad}", "prefix"},
		"not yaml":        {"databases: [", "f.yaml"},
		"secret in error": {"databases:\n  - {name: a, dialect: postgres, dsn: 'postgres://u:${PW}@h/d', prefix: '1x'}", "prefix"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseDatabases([]byte(tc.file), "f.yaml", "txbox", vars)
			var ue usageError
			if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestExpandEnv(t *testing.T) {
	vars := env(map[string]string{"A": "x", "EMPTY": ""})
	for in, want := range map[string]string{
		"":             "",
		"plain":        "plain",
		"${A}":         "x",
		"a${A}b${A}c":  "axbxc",
		"$$":           "$",
		"$${A}":        "${A}",
		"pa$word":      "pa$word",
		"end$":         "end$",
		"${EMPTY}-":    "-",
		"$A is not it": "$A is not it",
	} {
		got, err := expandEnv(in, vars)
		if err != nil || got != want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
