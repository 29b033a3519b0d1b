package main_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

// hostileKey is a key with markup and terminal escapes: a terminal must show it, not obey it.
const hostileKey = "o-1/<script>alert(1)</script>\x1b[31mred\x1b]0;title\a"

// twoServices prepares an order service's database on MariaDB and a payment service's on PostgreSQL, as the
// orders example leaves them after order o-1: order-created published (kept by Retention) and processed by the
// payment service, whose payment-completed waits in its outbox; plus a poisoned key parked in the payments
// inbox. It writes a databases file that takes both DSNs from the environment and returns its path and that
// environment.
func twoServices(t *testing.T) (file string, env []string) {
	t.Helper()
	orders, payments := testdb.Open(t, testdb.Targets[0]), testdb.Open(t, testdb.Targets[2])
	enqueue(t, orders, outbox.Message{Topic: "order-created", Key: "o-1/created", Payload: []byte(`{"amount":1250}`)})
	r, err := relay.New(orders.DB, relay.Config{Dialect: orders.Dialect, Publisher: memory.New(), Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Drain(context.Background()); n != 1 || err != nil {
		t.Fatalf("drain = %d, %v", n, err)
	}
	process(t, payments, "payment-service", "o-1/payment")
	enqueue(t, payments, outbox.Message{Topic: "payment-completed", Key: "o-1/payment-completed"})
	park(t, payments, "payment-service", inbox.Delivery{Key: hostileKey, Topic: "order-created", Payload: []byte("x")})

	file = filepath.Join(t.TempDir(), "databases.yaml")
	yaml := "databases:\n" +
		"  - {name: orders, dialect: mariadb, dsn: '${ORDERS_DSN}'}\n" +
		"  - {name: payments, dialect: postgres, dsn: '${PAYMENTS_DSN}'}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, []string{"ORDERS_DSN=" + orders.DSN, "PAYMENTS_DSN=" + payments.DSN}
}

// TestTraceCommand: txbox trace prints one timeline across a MariaDB and a PostgreSQL database read from a
// databases file, shows a hostile key as text, and reports a database it cannot read without printing its
// password.
func TestTraceCommand(t *testing.T) {
	file, env := twoServices(t)
	r := run(t, nil, env, "trace", "--databases", file, "o-1")
	if r.code != 0 {
		t.Fatalf("trace: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("info: txbox trace o-1:\n%s", r.stdout)
	for _, want := range []string{"orders    enqueued", "orders    published", "payments  processed", "payments  enqueued",
		"payments  waiting", "payments  parked !", "o-1/created", "o-1/payment ", "payment-service", "needs attention:",
		`o-1/<script>alert(1)</script>\x1b[31mred\x1b]0;title\a`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("trace output lacks %q", want)
		}
	}
	if strings.ContainsAny(r.stdout+r.stderr, "\x1b\a") {
		t.Error("trace output holds raw control characters")
	}
	// The order of the story: enqueued before published before processed.
	iEnq, iPub, iProc := strings.Index(r.stdout, "orders    enqueued"), strings.Index(r.stdout, "orders    published"),
		strings.Index(r.stdout, "payments  processed")
	if !(iEnq < iPub && iPub < iProc) {
		t.Errorf("events out of order: enqueued at %d, published at %d, processed at %d", iEnq, iPub, iProc)
	}

	r = run(t, nil, env, "trace", "--databases", file, "--json", "--exact", "o-1/created")
	var tr console.Trace
	if err := json.Unmarshal([]byte(r.stdout), &tr); r.code != 0 || err != nil || len(tr.Events) != 2 ||
		tr.Events[1].Kind != console.EventPublished {
		t.Fatalf("trace --json --exact: code %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}

	// A database that does not answer: reported, the others traced, exit 1, its password nowhere.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	yaml := "databases:\n  - {name: orders, dialect: mariadb, dsn: '${ORDERS_DSN}'}\n" +
		"  - {name: gone, dialect: postgres, dsn: 'postgres://app:hunter2-secret@127.0.0.1:1/x?connect_timeout=2'}\n"
	if err := os.WriteFile(bad, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, nil, env, "trace", "--databases", bad, "o-1")
	if r.code != 1 || !regexp.MustCompile(`orders +published`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "database gone could not be read") {
		t.Errorf("trace with a dead database: code %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, "hunter2") {
		t.Errorf("the password of a DSN was printed:\n%s%s", r.stdout, r.stderr)
	}

	// Bad usage exits 2 before touching a database.
	for _, args := range [][]string{
		{"trace", "--databases", file},
		{"trace", "--databases", file, "--dsn", "x", "o-1"},
		{"trace", "--databases", file, "--limit", "0", "o-1"},
		{"trace", "--databases", file, "--namesrv", "localhost:9876", "o-1"},
		{"trace", "--databases", filepath.Join(t.TempDir(), "missing.yaml"), "o-1"},
		{"trace", "--databases", file, ""},
	} {
		if r := run(t, nil, env, args...); r.code != 2 {
			t.Errorf("%v: code %d, want 2\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
}
