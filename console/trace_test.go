package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/internal/rmqquery"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	rmqrelay "github.com/txbox/txbox/relay/rocketmq"
)

// flow is a message that went outbox → relay → RocketMQ → inbox, between two databases, as the orders
// example's services do: the order service's outbox publishes order-created, the payment service consumes
// it through its inbox and enqueues payment-completed in the same transaction.
type flow struct {
	orders, payments *testdb.DB
	topic, group     string
	order            string // the order id: the keys are <order>/created and <order>/payment-completed
}

func runFlow(t *testing.T, tg testdb.Target, b rmqtest.Broker) flow {
	t.Helper()
	f := flow{orders: testdb.Open(t, tg), payments: testdb.Open(t, tg), topic: b.Topic(t, 2), group: b.Group(t),
		order: "o-" + randomHex(4)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	enqueue(t, f.orders, outbox.Message{Topic: f.topic, Key: f.order + "/created", Payload: []byte(`{"amount":1250}`)})

	pub, err := rmqrelay.New(rmqrelay.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "P")})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	rl, err := relay.New(f.orders.DB, relay.Config{Dialect: tg.Dialect, Publisher: pub, Retention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := rl.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("relay drain = %d, %v; want 1 published", n, err)
	}

	ib, err := inbox.New(f.payments.DB, inbox.Config{Dialect: tg.Dialect, Consumer: f.group})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(outbox.Config{Dialect: tg.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan rocketmq.Outcome, 16)
	c, err := rocketmq.New(ib, rocketmq.Config{NameServers: b.NameServers(), Group: f.group, Topic: f.topic,
		FromFirstOffset: true, OnOutcome: func(o rocketmq.Outcome) { done <- o }},
		func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
			return ob.Enqueue(ctx, tx, outbox.Message{Topic: "payment-completed", Key: f.order + "/payment-completed",
				Payload: []byte(`{}`)})
		})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Shutdown(context.Background()) }()
	select {
	case o := <-done:
		if o.Result != inbox.Processed || !o.Acked {
			t.Fatalf("payment service: %+v", o)
		}
	case <-ctx.Done():
		t.Fatal("the payment service consumed nothing within 2 minutes")
	}
	return f
}

// TestTraceAcrossDatabasesAndBroker: the trace of a key that went outbox → relay → RocketMQ → inbox shows
// every step with its time, in both databases and on the broker, in the order they happened.
func TestTraceAcrossDatabasesAndBroker(t *testing.T) {
	b := rmqtest.Get(t)
	onTargets(t, func(t *testing.T, tg testdb.Target) {
		f := runFlow(t, tg, b)
		e := newEnv(t, console.Config{Token: token, Broker: &rmqquery.Client{NameServers: b.NameServers()}},
			map[string]*testdb.DB{"orders": f.orders, "payments": f.payments}, "orders", "payments")

		var tr console.Trace
		deadline := time.Now().Add(time.Minute)
		for { // the broker's key index is written after the send returned
			e.api("GET", "/api/v1/trace?key="+f.order, nil, &tr, 200)
			if hasKind(tr.Events, console.EventStored) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond) // polling interval, not a wait for work
		}
		var got []string
		for _, ev := range tr.Events {
			got = append(got, fmt.Sprintf("%s %s %s", ev.Source, ev.Kind, ev.Key))
		}
		want := []string{
			"orders enqueued " + f.order + "/created",
			"broker stored " + f.order + "/created",
			"orders published " + f.order + "/created",
			"payments processed " + f.order + "/created",
			"payments enqueued " + f.order + "/payment-completed",
			"payments waiting " + f.order + "/payment-completed",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("trace events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for i, ev := range tr.Events {
			if ev.At.IsZero() || time.Since(ev.At) > 5*time.Minute || (i > 0 && ev.At.Before(tr.Events[i-1].At)) {
				t.Errorf("event %d (%s) at %v: want a recent time, not before the previous event's", i, ev.Kind, ev.At)
			}
		}
		enq, stored, pub, proc := tr.Events[0], tr.Events[1], tr.Events[2], tr.Events[3]
		if enq.Topic != f.topic || enq.ID == 0 || pub.ID != enq.ID || pub.Attempts != 0 || proc.Consumer != f.group {
			t.Errorf("enqueued %+v, published %+v, processed %+v", enq, pub, proc)
		}
		if !strings.Contains(stored.Detail, "msg id") || !strings.Contains(stored.Detail, "queue broker-") {
			t.Errorf("stored event's detail = %q, want the queue and message id", stored.Detail)
		}
		for _, s := range tr.Sources {
			if s.Error != "" || s.Truncated {
				t.Errorf("source %+v", s)
			}
		}
		if len(tr.Sources) != 3 || tr.Sources[2].Kind != "broker" {
			t.Errorf("sources = %+v, want orders, payments and the broker", tr.Sources)
		}

		// Exact: the key alone, not the keys under the order.
		e.api("GET", "/api/v1/trace?exact=1&key="+f.order+"/payment-completed", nil, &tr, 200)
		if len(tr.Events) != 2 || tr.Events[0].Kind != console.EventEnqueued || tr.Events[1].Kind != console.EventWaiting {
			t.Errorf("exact trace of payment-completed = %+v", tr.Events)
		}
		// The page shows the same timeline.
		page := e.do("GET", "/trace?key="+f.order, "", nil)
		if page.code != 200 || strings.Count(page.body, `<tr class="ev `) != 6 || !strings.Contains(page.body, "published") {
			t.Errorf("trace page: status %d\n%s", page.code, page.body)
		}
	})
}

func hasKind(es []console.Event, k console.EventKind) bool {
	for _, e := range es {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// A trace reports a database it cannot read and still shows the others.
func TestTraceReportsUnreadableDatabase(t *testing.T) {
	good := testdb.Open(t, testdb.Targets[0])
	broken := testdb.Open(t, testdb.Targets[2])
	enqueue(t, good, outbox.Message{Topic: "t", Key: "k/1"})
	e := newEnv(t, console.Config{ReadOnly: true}, map[string]*testdb.DB{"good": good, "broken": broken}, "good", "broken")
	if _, err := broken.Exec("DROP TABLE txbox_inbox_dead"); err != nil {
		t.Fatal(err)
	}
	var tr console.Trace
	e.api("GET", "/api/v1/trace?key=k", nil, &tr, 200)
	if len(tr.Events) != 2 || tr.Sources[0].Error != "" || !strings.Contains(tr.Sources[1].Error, "txbox_inbox_dead") {
		t.Fatalf("trace = %+v", tr)
	}
	e.api("GET", "/api/v1/trace?key=", nil, nil, 400)
}
