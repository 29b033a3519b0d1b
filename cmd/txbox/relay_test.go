package main_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// receiver gathers the business keys a broker consumer received.
type receiver struct {
	ch   <-chan *primitive.MessageExt
	keys map[string]int
}

func (r *receiver) drain() {
	for {
		select {
		case m := <-r.ch:
			r.keys[m.GetProperty("TXBOX_KEY")]++
		default:
			return
		}
	}
}

// metric returns the value of an unlabelled sample in a Prometheus text exposition, or -1.
func metric(body, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// The relay publishes a backlog to the broker (every key arrives, the outbox empties), its metrics move, the
// health endpoints answer, dead letters requeued from both tables are published, and SIGTERM stops it with
// exit status 0.
func TestRelayPublishesBacklogAndStopsOnSIGTERM(t *testing.T) {
	b := rmqtest.Get(t)
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		topic := b.Topic(t, 4)
		// Dead letters to requeue later: an outbox row buried by a failing publisher, and a parked inbox
		// message received from the same topic.
		bury(t, db, outbox.Message{Topic: topic, Key: "dead-outbox", Payload: []byte("o")})
		park(t, db, "c1", inbox.Delivery{Key: "dead-inbox", Payload: []byte("i"), Topic: topic})

		p := start(t, db, "relay", "--namesrv", b.Namesrv, "--group", rmqtest.Name(t, "P"), "--workers", "2",
			"--batch", "50", "--max-poll-interval", "200ms", "--metrics-addr", "127.0.0.1:0", "--log-level", "debug")
		base := "http://" + p.metricsAddr(t)
		waitFor(t, time.Minute, func() (bool, string) {
			code, body := get(base + "/readyz")
			return code == 200, fmt.Sprintf("/readyz: %d %s", code, body)
		})
		if code, _ := get(base + "/healthz"); code != 200 {
			t.Fatalf("/healthz: %d", code)
		}
		_, body := get(base + "/metrics")
		for _, name := range []string{"txbox_outbox_pending", "txbox_outbox_due", "txbox_outbox_oldest_pending_seconds",
			"txbox_outbox_dead", "go_goroutines"} {
			if metric(body, name) < 0 {
				t.Fatalf("/metrics has no %s:\n%s", name, body)
			}
		}
		if v := metric(body, "txbox_relay_published_total"); v != 0 {
			t.Fatalf("txbox_relay_published_total before any row: %v", v)
		}
		if v := metric(body, "txbox_outbox_dead"); v != 1 {
			t.Fatalf("txbox_outbox_dead: %v, want 1", v)
		}

		const n = 300
		msgs := make([]outbox.Message, n)
		for i := range msgs {
			msgs[i] = outbox.Message{Topic: topic, Key: fmt.Sprintf("k-%d", i), Payload: []byte("p"),
				ShardingKey: fmt.Sprintf("s-%d", i%7)}
		}
		enqueue(t, db, msgs...)
		rcv := &receiver{ch: b.Collect(t, topic), keys: map[string]int{}}
		waitFor(t, 2*time.Minute, func() (bool, string) {
			rcv.drain()
			pending := count(t, db, "SELECT COUNT(*) FROM txbox_outbox")
			return len(rcv.keys) == n && pending == 0, fmt.Sprintf("%d of %d keys received, %d rows pending\n%s",
				len(rcv.keys), n, pending, p.log())
		})
		waitFor(t, 30*time.Second, func() (bool, string) {
			_, body := get(base + "/metrics")
			v := metric(body, "txbox_relay_published_total")
			return v == n && metric(body, "txbox_outbox_pending") == 0, fmt.Sprintf("published_total %v", v)
		})

		// Requeued dead letters are published by the running relay.
		for _, args := range [][]string{{"--outbox", "--key", "dead-outbox"}, {"--inbox", "--consumer", "c1", "--all"}} {
			r := run(t, db, nil, append([]string{"dead", "requeue"}, args...)...)
			if r.code != 0 || !strings.Contains(r.stdout, "requeued: 1 of 1") {
				t.Fatalf("dead requeue %v: code %d\n%s%s", args, r.code, r.stdout, r.stderr)
			}
		}
		waitFor(t, time.Minute, func() (bool, string) {
			rcv.drain()
			return rcv.keys["dead-outbox"] == 1 && rcv.keys["dead-inbox"] == 1,
				fmt.Sprintf("requeued keys received: outbox %d, inbox %d", rcv.keys["dead-outbox"], rcv.keys["dead-inbox"])
		})
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox_dead") + count(t, db, "SELECT COUNT(*) FROM txbox_inbox_dead"); n != 0 {
			t.Fatalf("%d dead letters left after requeue", n)
		}
		// The released inbox key runs its handler on the next delivery.
		process(t, db, "c1", "dead-inbox")

		if code := p.stop(t); code != 0 {
			t.Fatalf("relay exit status %d after SIGTERM, want 0:\n%s", code, p.log())
		}
		if !strings.Contains(p.log(), "txbox relay: stopped") {
			t.Fatalf("no clean stop logged:\n%s", p.log())
		}
	})
}

// The relay refuses to start, with exit status 1 and a clear message, on an unmigrated schema and when no
// name server answers; bad flags exit 2 before it connects anywhere.
func TestRelayRefusesToStart(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		r := run(t, db, nil, "relay", "--namesrv", "127.0.0.1:9876")
		if r.code != 1 || !strings.Contains(r.stderr, "txbox migrate up") {
			t.Fatalf("unmigrated: code %d\n%s", r.code, r.stderr)
		}
		if r := run(t, db, nil, "migrate", "up"); r.code != 0 {
			t.Fatalf("migrate up: %d %s", r.code, r.stderr)
		}
		r = run(t, db, nil, "relay", "--namesrv", "127.0.0.1:1", "--connect-timeout", "5s")
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach any RocketMQ name server") {
			t.Fatalf("no name server: code %d\n%s", r.code, r.stderr)
		}
	}, testdb.Unmigrated())
}

// SIGTERM in the middle of a backlog finishes the batches in flight: the relay exits 0, every row is either
// published and deleted or still in the outbox (never published and left behind), and a new relay publishes
// the rest.
func TestRelayStopsMidBacklogWithoutLoss(t *testing.T) {
	b := rmqtest.Get(t)
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		topic := b.Topic(t, 4)
		const n = 3000
		msgs := make([]outbox.Message, n)
		for i := range msgs {
			msgs[i] = outbox.Message{Topic: topic, Key: fmt.Sprintf("k-%d", i), Payload: []byte("p")}
		}
		enqueue(t, db, msgs...)
		args := []string{"relay", "--namesrv", b.Namesrv, "--group", rmqtest.Name(t, "P"), "--workers", "1", "--batch", "20"}
		p := start(t, db, args...)
		waitFor(t, time.Minute, func() (bool, string) {
			return count(t, db, "SELECT COUNT(*) FROM txbox_outbox") < n, "nothing published yet\n" + p.log()
		})
		if code := p.stop(t); code != 0 {
			t.Fatalf("exit status %d after SIGTERM mid-backlog:\n%s", code, p.log())
		}
		left := map[string]bool{}
		rows, err := db.QueryxContext(t.Context(), "SELECT msg_key FROM txbox_outbox")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			left[k] = true
		}
		_ = rows.Close()
		if len(left) == 0 {
			t.Fatalf("the relay published all %d rows before SIGTERM: the test's premise (a signal mid-backlog) does "+
				"not hold, so it shows nothing", n)
		}
		t.Logf("info: %d of %d rows left in the outbox at SIGTERM", len(left), n)

		rcv := &receiver{ch: b.Collect(t, topic), keys: map[string]int{}}
		waitFor(t, 2*time.Minute, func() (bool, string) {
			rcv.drain()
			return len(rcv.keys)+len(left) >= n, fmt.Sprintf("%d received + %d left of %d", len(rcv.keys), len(left), n)
		})
		for k := range rcv.keys {
			if left[k] {
				t.Fatalf("key %s was published but its row was left in the outbox: the in-flight batch was not finished", k)
			}
		}
		if len(left) > 0 {
			p := start(t, db, args...)
			waitFor(t, 2*time.Minute, func() (bool, string) {
				rcv.drain()
				return len(rcv.keys) == n, fmt.Sprintf("%d of %d keys received after the restart", len(rcv.keys), n)
			})
			if code := p.stop(t); code != 0 {
				t.Fatalf("second relay: exit status %d", code)
			}
		}
	})
}
