package rocketmq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	inboxrmq "github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
)

// received is one message an independent consumer got, where it was stored.
type received struct {
	key, shardingKey string
	seq              int // its place among its sharding key's messages
	broker           string
	queue            int
	offset           int64
	at               time.Time
}

// rawLog keeps what an independent consumer received.
type rawLog struct {
	mu  sync.Mutex
	all []received
}

func (l *rawLog) keys() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, r := range l.all {
		out[r.key]++
	}
	return out
}

func (l *rawLog) snapshot() []received {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.all)
}

// A cluster of two brokers loses broker-a (SIGKILL) while the relay publishes 5,000 messages, half of them with
// a sharding key. Messages without a key keep flowing through broker-b; a sharding key whose queue is on
// broker-a waits (it is never sent to broker-b's queues, which would let its later messages overtake the ones
// stuck on broker-a) and resumes once broker-a is back. An independent consumer gets every message, each
// sharding key's on one queue in order; two inbox consumers of one group rebalance across the loss and the
// return and leave exactly one effect per key.
func TestBrokerLoss(t *testing.T) {
	if os.Getenv("TXBOX_CLUSTER") == "" {
		t.Skip("starts a cluster of two brokers and waits out route refreshes (minutes): run by make cluster (TXBOX_CLUSTER=1)")
	}
	c := rmqtest.StartCluster(t)
	topic := c.Topic(t, 4) // 4 queues on each broker
	out, effects := testdb.Open(t, testdb.Targets[0]), testdb.Open(t, testdb.Targets[2])
	if _, err := effects.ExecContext(context.Background(), "CREATE TABLE effects (k TEXT PRIMARY KEY, n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}

	// Two inbox consumers of one group: each message's effect (a counter per key) in the inbox's transaction.
	group := c.Group(t)
	ib, err := inbox.New(effects.DB, inbox.Config{Dialect: effects.Dialect, Consumer: "effects"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		cons, err := inboxrmq.New(ib, inboxrmq.Config{NameServers: c.NameServers(), Group: group, Topic: topic,
			FromFirstOffset: true, InstanceName: rmqtest.Name(t, "I"+strconv.Itoa(i))},
			func(ctx context.Context, tx *sqlx.Tx, m *inboxrmq.Message) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO effects (k, n) VALUES ($1, 1) ON CONFLICT (k) DO UPDATE SET n = effects.n + 1", m.Key)
				return err
			})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cons.Shutdown(context.Background()) })
	}

	pub, err := rocketmq.New(rocketmq.Config{NameServers: c.NameServers(), Group: rmqtest.Name(t, "P"), SendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	// The publisher as the relay sees it, noting when a key was held back for broker-a's absence from the route.
	var held atomic.Bool
	watched := relay.PublisherFunc(func(ctx context.Context, rec outbox.Record) error {
		err := pub.Publish(ctx, rec)
		if errors.Is(err, rocketmq.ErrQueueUnavailable) {
			held.Store(true)
		}
		return err
	})
	// Backoff bounded at 2s, so that a key waiting for broker-a goes out soon after it is back; MaxAttempts far
	// above any failure count the outage could cause (its failures match relay.ErrUnavailable and count none).
	r, err := relay.New(out.DB, relay.Config{Dialect: out.Dialect, Publisher: watched, BatchSize: 100, MinBackoff: 100 * time.Millisecond,
		MaxBackoff: 2 * time.Second, MaxAttempts: 1000, MaxPollInterval: 100 * time.Millisecond, PublishTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-relayDone; err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	const n, keys = 5000, 40
	ob, err := outbox.New(outbox.Config{Dialect: out.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(from, to int) {
		for start := from; start < to; start += 500 {
			var msgs []outbox.Message
			for i := start; i < min(to, start+500); i++ {
				m := outbox.Message{Topic: topic, Key: fmt.Sprintf("m-%04d", i), Payload: []byte("u")}
				if i%2 == 0 { // keyed: the i/2-th message, of key (i/2)%keys, its (i/2)/keys-th
					m.ShardingKey = fmt.Sprintf("s%02d", (i/2)%keys)
					m.Payload = []byte(strconv.Itoa(i / 2 / keys))
				}
				msgs = append(msgs, m)
			}
			if err := ob.Enqueue(context.Background(), out.DB, msgs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	enqueue(0, 2000)

	raw := &rawLog{}
	ch := c.Broker().Collect(t, topic)
	stopRaw := make(chan struct{})
	t.Cleanup(func() { close(stopRaw) })
	go func() {
		for {
			var m *primitive.MessageExt
			select {
			case m = <-ch:
			case <-stopRaw:
				return
			}
			seq, _ := strconv.Atoi(string(m.Body))
			rec := received{key: m.GetProperty("TXBOX_KEY"), shardingKey: m.GetShardingKey(), seq: seq,
				broker: m.Queue.BrokerName, queue: m.Queue.QueueId, offset: m.QueueOffset, at: time.Now()}
			raw.mu.Lock()
			raw.all = append(raw.all, rec)
			raw.mu.Unlock()
		}
	}()
	wait := func(timeout time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("not within %s: %s (%d distinct keys received)", timeout, what, len(raw.keys()))
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
	}
	wait(2*time.Minute, "1,000 messages through both brokers", func() bool { return len(raw.keys()) >= 1000 })
	// Where each sharding key lives, as seen before the loss.
	home := map[string]string{}
	for _, m := range raw.snapshot() {
		if m.shardingKey != "" {
			home[m.shardingKey] = m.broker
		}
	}

	c.Kill(t, "broker-a")
	killed := time.Now()
	enqueue(2000, n)
	afterKill := func(r received) bool { k, _ := strconv.Atoi(r.key[2:]); return k >= 2000 }
	wait(2*time.Minute, "500 messages without a key, enqueued after the loss, received through broker-b", func() bool {
		got := 0
		for _, m := range raw.snapshot() {
			if m.shardingKey == "" && afterKill(m) {
				got++
			}
		}
		return got >= 500
	})
	t.Logf("info: broker-a lost: 500 messages without a key enqueued since received through broker-b within %s",
		time.Since(killed).Round(100*time.Millisecond))
	// The client reads routes every 30s: once its route has no broker-a, the keys of broker-a are held back
	// (ErrQueueUnavailable), where a selector over the route as it is would send them to broker-b.
	wait(2*time.Minute, "a key held back for broker-a's absence from the route", held.Load)
	t.Logf("info: the route lost broker-a %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	for _, m := range raw.snapshot() {
		if m.shardingKey != "" && home[m.shardingKey] == "broker-a" && afterKill(m) {
			t.Fatalf("%s of key %s (broker-a's) received while broker-a was down, from %s", m.key, m.shardingKey, m.broker)
		}
	}

	c.Start(t, "broker-a")
	back := time.Now()
	wait(4*time.Minute, "every message once broker-a is back", func() bool { return len(raw.keys()) == n })
	t.Logf("info: broker-a back: every message received %s later", time.Since(back).Round(100*time.Millisecond))

	// Order per sharding key: one queue, offsets increasing with the key's sequence (duplicates aside).
	byKey := map[string][]received{}
	waited := 0
	for _, m := range raw.snapshot() {
		if m.shardingKey == "" {
			continue
		}
		byKey[m.shardingKey] = append(byKey[m.shardingKey], m)
		if home[m.shardingKey] == "broker-a" && afterKill(m) && m.at.After(back) {
			waited++
		}
	}
	if waited == 0 {
		t.Error("no message of a broker-a key waited for broker-a: the loss proved nothing")
	}
	for k, ms := range byKey {
		slices.SortFunc(ms, func(a, b received) int { return int(a.offset - b.offset) })
		last := -1
		for _, m := range ms {
			if m.broker != ms[0].broker || m.queue != ms[0].queue {
				t.Fatalf("key %s on %s/%d and on %s/%d", k, ms[0].broker, ms[0].queue, m.broker, m.queue)
			}
			if m.seq < last {
				t.Fatalf("key %s: message %d stored after message %d", k, m.seq, last)
			}
			last = max(last, m.seq)
		}
	}

	// Exactly one effect per key, after the consumers rebalanced across the loss and the return.
	wait(4*time.Minute, "an effect for every key", func() bool {
		var got int
		_ = effects.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM effects").Scan(&got)
		return got == n
	})
	var twice int
	if err := effects.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM effects WHERE n <> 1").Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice != 0 {
		t.Errorf("%d keys with more than one effect", twice)
	}
	dups := 0
	for _, k := range raw.keys() {
		dups += k - 1
	}
	t.Logf("info: %d messages, %d delivered twice to the independent consumer; %d of broker-a's keys' messages waited for it",
		n, dups, waited)
}
