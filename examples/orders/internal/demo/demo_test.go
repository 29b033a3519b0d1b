package demo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/demo"
	"github.com/txbox/txbox/examples/orders/internal/leaktest"
	"github.com/txbox/txbox/internal/testdb"
)

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	testdb.Main(m, leaktest.Options()...)
}

// TestDemo runs a small demo — 100 orders, every fault injected — on each database over the real broker,
// and checks the invariants from the databases: every order charged exactly once and paid exactly once.
func TestDemo(t *testing.T) {
	namesrv := os.Getenv("TXBOX_ROCKETMQ_NAMESRV")
	if namesrv == "" {
		msg := "TXBOX_ROCKETMQ_NAMESRV is not set: start the services with `make services` and export their " +
			"addresses with `eval \"$(scripts/services.sh env)\"`"
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and " + msg)
		}
		t.Skip(msg)
	}
	for _, tg := range []testdb.Target{testdb.Targets[0], testdb.Targets[2]} { // mariadb, postgres-pgx
		t.Run(tg.Name, func(t *testing.T) {
			t.Parallel()
			orderDB, paymentDB := testdb.Open(t, tg), testdb.Open(t, tg)
			run := randomHex(4)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cfg := demo.Config{
				Dialect: tg.Dialect, OrderDSN: orderDB.DSN, PaymentDSN: paymentDB.DSN, NameServers: []string{namesrv},
				OrderCreatedTopic: "demo-" + run + "-order-created", PaymentCompletedTopic: "demo-" + run + "-payment-completed",
				GroupSuffix: "-" + run, Orders: 100,
				// More faults than the demo's default, so that 100 orders meet each of them several times.
				Faults:   bus.Faults{LostAckPercent: 10, SlowPercent: 5, ResendPercent: 10},
				Deadline: 2 * time.Minute,
			}
			if err := demo.PrepareBroker(ctx, filepath.Join(repoRoot(t), "scripts", "rocketmq.sh"), cfg); err != nil {
				t.Fatal(err)
			}
			rep, err := demo.Run(ctx, cfg)
			var b strings.Builder
			rep.Print(&b)
			t.Logf("report:\n%s", b.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Check(); err != nil {
				t.Fatalf("invariants: %v", err)
			}
			all := rep.OrderService.Add(rep.PaymentService)
			if all.DuplicateLostAck == 0 || all.DuplicateResent == 0 || all.TimeoutsRolledBack == 0 {
				t.Errorf("a fault was never exercised: %+v", all)
			}
		})
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
