package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m, rmqtest.LeakOptions()...) }

// TestBoundedFaults runs every scenario of the suite on both databases with small sizes and a 2s broker outage,
// on private servers of its own, so that CI runs it: every invariant must hold (nothing lost, no effect twice, no
// concurrent publish, order per sharding key, no dead letter from an outage). The recovery targets are printed,
// not enforced: this test must not pass or fail on timing (`make faults` enforces them).
func TestBoundedFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts private servers; skipped with -short")
	}
	admin := os.Getenv(rmqtest.EnvAdmin)
	if os.Getenv("TXBOX_POSTGRES_DSN") == "" || os.Getenv("TXBOX_MYSQL_DSN") == "" || admin == "" {
		msg := "the fault suite starts servers of its own from the installed services: run `make services` and " +
			"`eval \"$(scripts/services.sh env)\"`"
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and " + msg)
		}
		t.Skip(msg)
	}
	if os.Geteuid() != 0 {
		t.Skip("the service scripts run the servers as their own users, which needs root")
	}
	scripts, err := filepath.Abs("../../scripts")
	if err != nil {
		t.Fatal(err)
	}
	opts := options{dbs: []string{"mariadb", "postgres"}, scenarios: scenarioNames, rows: 1000, deliveries: 200,
		outages: []time.Duration{2 * time.Second}, relayKills: 3, scripts: scripts,
		rocketLib: filepath.Join(filepath.Dir(filepath.Dir(admin)), "lib")}
	// End a minute before the test's deadline, so that run stops its servers before the test binary is killed.
	end := time.Now().Add(15 * time.Minute)
	if d, ok := t.Deadline(); ok {
		end = d.Add(-time.Minute)
	}
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	var out bytes.Buffer
	ok, err := run(ctx, opts, &out, io.Discard)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatal("an invariant broke: see the reports above")
	}
}
