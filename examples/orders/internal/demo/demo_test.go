package demo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/demo"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
)

func TestMain(m *testing.M) {
	rlog.SetLogLevel("error")
	// rmqtest's list of the client's goroutines that outlive Shutdown, plus a remoting request still waiting
	// for the broker's answer when the run's clients shut down. Goroutines that run consume callbacks are not
	// ignored: a handler still running after its consumer's Shutdown is a real leak.
	const remote = "github.com/apache/rocketmq-client-go/v2/internal/remote"
	testdb.Main(m, append(rmqtest.LeakOptions(),
		testdb.IgnoreAnyFunction(remote+".(*remotingClient).receiveResponse"),
		testdb.IgnoreAnyFunction(remote+".(*ResponseFuture).waitResponse"))...)
}

// TestDemo runs a small demo — 100 orders, every fault injected — on each database over the real broker,
// and checks the invariants from the databases: every order charged exactly once and paid exactly once.
func TestDemo(t *testing.T) {
	broker := rmqtest.Get(t) // skips without a broker, fails under CI
	// One database after the other: the run is about correctness under injected faults, and on a busy 2-core
	// CI machine two runs at once mostly add handler timeouts.
	for _, tg := range []testdb.Target{testdb.Targets[0], testdb.Targets[2]} { // mariadb, postgres-pgx
		t.Run(tg.Name, func(t *testing.T) {
			orderDB, paymentDB := testdb.Open(t, tg), testdb.Open(t, tg)
			run := randomHex(4)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			cfg := demo.Config{
				Dialect: tg.Dialect, OrderDSN: orderDB.DSN, PaymentDSN: paymentDB.DSN, NameServers: broker.NameServers(),
				OrderCreatedTopic: "demo-" + run + "-order-created", PaymentCompletedTopic: "demo-" + run + "-payment-completed",
				GroupSuffix: "-" + run, Orders: 100,
				// More faults than the demo's default, so that 100 orders meet each of them several times.
				Faults: bus.Faults{LostAckPercent: 10, SlowPercent: 5, ResendPercent: 10, LostResponsePercent: 5},
				// A generous handler deadline: -race and a loaded machine make normal handlers slow, and the
				// slow-handler fault waits it out anyway.
				HandlerTimeout: 5 * time.Second,
				Deadline:       2 * time.Minute,
				Logger:         slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn})),
			}
			create := func(_ context.Context, topic string, queues int) error {
				broker.CreateTopic(t, topic, queues)
				return nil
			}
			if err := demo.PrepareBroker(ctx, create, cfg); err != nil {
				t.Fatal(err)
			}
			rep, err := demo.Run(ctx, cfg)
			var b strings.Builder
			rep.Print(&b)
			t.Logf("info: report:\n%s", b.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := rep.Check(); err != nil {
				t.Fatalf("invariants: %v", err)
			}
			all := rep.OrderService.Add(rep.PaymentService)
			if all.DuplicateLostAck == 0 || all.DuplicateResent == 0 || all.TimeoutsRolledBack == 0 || all.LostResponses == 0 {
				t.Errorf("a fault was never exercised: %+v", all)
			}
			// Slow handlers rolled back after the charge: their redeliveries found it in the effect records. Lost
			// gateway answers were charged again under the same key: the gateway answered with the first charge.
			p := rep.PaymentService
			if p.EffectDuplicates < p.TimeoutsRolledBack || rep.Gateway.Replays < int(p.LostResponses) ||
				rep.Gateway.Calls != rep.Gateway.Charges+rep.Gateway.Replays {
				t.Errorf("effect records absorbed %d duplicates for %d slow payment handlers; gateway: %d calls, %d charges, "+
					"%d replays for %d lost answers", p.EffectDuplicates, p.TimeoutsRolledBack, rep.Gateway.Calls,
					rep.Gateway.Charges, rep.Gateway.Replays, p.LostResponses)
			}
		})
	}
}

// testWriter sends the services' warnings (failed deliveries and why) to the test's log until the test ends.
// The RocketMQ client's logger is process-global and its goroutines outlive Shutdown, so records can still
// arrive afterwards; they are dropped (t.Log would panic).
type testWriter struct {
	t    *testing.T
	mu   sync.Mutex
	done bool
}

func newTestWriter(t *testing.T) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log("info: " + strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestDemoWithoutInbox runs the same faults with the services applying every delivery in a plain
// transaction, as consumers without txbox do, and checks that the report's invariants catch the result:
// orders charged and paid more than once. It keeps TestDemo from passing by checking nothing.
func TestDemoWithoutInbox(t *testing.T) {
	broker := rmqtest.Get(t)
	tg := testdb.Targets[0] // mariadb; the point is the check, not the dialect
	orderDB, paymentDB := testdb.Open(t, tg), testdb.Open(t, tg)
	run := randomHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := demo.Config{
		Dialect: tg.Dialect, OrderDSN: orderDB.DSN, PaymentDSN: paymentDB.DSN, NameServers: broker.NameServers(),
		OrderCreatedTopic: "demo-" + run + "-order-created", PaymentCompletedTopic: "demo-" + run + "-payment-completed",
		GroupSuffix: "-" + run, Orders: 60, WithoutInbox: true,
		Faults:         bus.Faults{LostAckPercent: 10, SlowPercent: 5, ResendPercent: 10},
		HandlerTimeout: 5 * time.Second,
		Deadline:       2 * time.Minute,
		Logger:         slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	create := func(_ context.Context, topic string, queues int) error {
		broker.CreateTopic(t, topic, queues)
		return nil
	}
	if err := demo.PrepareBroker(ctx, create, cfg); err != nil {
		t.Fatal(err)
	}
	rep, err := demo.Run(ctx, cfg)
	var b strings.Builder
	rep.Print(&b)
	t.Logf("info: report:\n%s", b.String())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Check() == nil || rep.ChargesMax < 2 || rep.PaymentEventsOne == rep.OrderRows {
		t.Fatalf("without the inbox the faults should charge and pay some orders twice; the report found nothing wrong")
	}
}
