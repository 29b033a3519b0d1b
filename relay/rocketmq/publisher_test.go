package rocketmq_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
	"github.com/txbox/txbox/rmqwire"
)

func TestMain(m *testing.M) { testdb.Main(m, rmqtest.LeakOptions()...) }

func newPublisher(t testing.TB, b rmqtest.Broker, extra ...producer.Option) *rocketmq.Publisher {
	t.Helper()
	p, err := rocketmq.NewWithOptions(rocketmq.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "P")}, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestConfigValidation(t *testing.T) {
	ok := []string{"127.0.0.1:9876"}
	for name, tc := range map[string]struct {
		cfg   rocketmq.Config
		field string
	}{
		"no name server":   {rocketmq.Config{}, "NameServers"},
		"host name":        {rocketmq.Config{NameServers: []string{"localhost:9876"}}, "NameServers[0]"},
		"no port":          {rocketmq.Config{NameServers: []string{"127.0.0.1"}}, "NameServers[0]"},
		"bad port":         {rocketmq.Config{NameServers: []string{"127.0.0.1:0"}}, "NameServers[0]"},
		"bad group":        {rocketmq.Config{NameServers: ok, Group: "a b"}, "Group"},
		"bad namespace":    {rocketmq.Config{NameServers: ok, Namespace: "a.b"}, "Namespace"},
		"default inst":     {rocketmq.Config{NameServers: ok, InstanceName: "DEFAULT"}, "InstanceName"},
		"half creds":       {rocketmq.Config{NameServers: ok, Credentials: rocketmq.Credentials{AccessKey: "a"}}, "Credentials"},
		"tiny timeout":     {rocketmq.Config{NameServers: ok, SendTimeout: time.Microsecond}, "SendTimeout"},
		"too many retries": {rocketmq.Config{NameServers: ok, Retries: 101}, "Retries"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := rocketmq.New(tc.cfg)
			if !errors.Is(err, rocketmq.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want ErrInvalidConfig naming %s", err, tc.field)
			}
		})
	}
}

func TestDefaultsAreFilledAndInstanceNamesUnique(t *testing.T) {
	a, err := rocketmq.New(rocketmq.Config{NameServers: []string{"127.0.0.1:9"}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := rocketmq.New(rocketmq.Config{NameServers: []string{"127.0.0.1:9"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ca, cb := a.Config(), b.Config()
	if ca.InstanceName == cb.InstanceName || ca.InstanceName == "" {
		t.Fatalf("instance names %q and %q, want two different ones", ca.InstanceName, cb.InstanceName)
	}
	if ca.Group != rocketmq.DefaultGroup || ca.SendTimeout != rocketmq.DefaultSendTimeout || ca.Retries != rocketmq.DefaultRetries {
		t.Fatalf("defaults not filled: %+v", ca)
	}
}

func TestMessageMapping(t *testing.T) {
	now := time.Now()
	r := outbox.Record{ID: 42, Message: outbox.Message{
		Topic: "T", Key: "order 1/100%", Tag: "created", ShardingKey: "order-1", Payload: []byte("body"),
		Headers:   map[string]string{"trace": "abc", "empty": ""},
		DeliverAt: now.Add(time.Minute),
	}}
	m, err := rocketmq.NewMessage(r, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"KEYS": "order%201/100%25", rmqwire.PropKey: "order 1/100%", rmqwire.PropOutboxID: "42", "TAGS": "created",
		"SHARDING_KEY": "order-1", "trace": "abc", rmqwire.PropEmptyHeaders: "empty",
		"TIMER_DELIVER_MS": fmt.Sprint(r.DeliverAt.UnixMilli()),
	}
	if got := m.GetProperties(); !maps.Equal(got, want) {
		t.Fatalf("properties\n got %v\nwant %v", got, want)
	}
	r.DeliverAt = now.Add(-time.Second)
	if m, _ := rocketmq.NewMessage(r, now); m.GetProperty("TIMER_DELIVER_MS") != "" {
		t.Fatal("a DeliverAt in the past must not make a timer message")
	}

	for name, mod := range map[string]func(*outbox.Record){
		"empty key":       func(r *outbox.Record) { r.Key = "" },
		"empty topic":     func(r *outbox.Record) { r.Topic = "" },
		"separator key":   func(r *outbox.Record) { r.Key = "a\x01b" },
		"separator tag":   func(r *outbox.Record) { r.Tag = "a\x02" },
		"reserved header": func(r *outbox.Record) { r.Headers = map[string]string{"DELAY": "3"} },
		"txbox header":    func(r *outbox.Record) { r.Headers = map[string]string{rmqwire.PropKey: "x"} },
		"huge headers":    func(r *outbox.Record) { r.Headers = map[string]string{"h": strings.Repeat("x", 40000)} },
	} {
		r := r
		mod(&r)
		_, err := rocketmq.NewMessage(r, now)
		if !errors.Is(err, rocketmq.ErrInvalidMessage) || !errors.Is(err, relay.ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrInvalidMessage and relay.ErrPermanent", name, err)
		}
	}
}

// TestPublishRoundTrip sends records through the broker and reads them back with a plain client consumer: key
// (with spaces and '%'), outbox id, tag, headers (empty ones too) and payload survive, and one sharding key
// stays on one queue.
func TestPublishRoundTrip(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	topic := b.Topic(t, 4)
	p := newPublisher(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const n = 20
	sent := map[string]outbox.Record{}
	for i := range n {
		r := outbox.Record{ID: int64(1000 + i), Message: outbox.Message{
			Topic: topic, Key: fmt.Sprintf("order %d/50%% off", i), Tag: "t" + fmt.Sprint(i%2),
			ShardingKey: "customer-" + fmt.Sprint(i%3), Payload: []byte(fmt.Sprintf("payload %d", i)),
			Headers: map[string]string{"h": fmt.Sprint(i), "blank": ""},
		}}
		if err := p.Publish(ctx, r); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		sent[r.Key] = r
	}
	queueOf := map[string]int{}
	got := b.Collect(t, topic)
	for range n {
		var m *primitive.MessageExt
		select {
		case m = <-got:
		case <-ctx.Done():
			t.Fatalf("only some messages arrived: %v", ctx.Err())
		}
		key := m.GetProperty(rmqwire.PropKey)
		r, ok := sent[key]
		if !ok {
			t.Fatalf("unexpected key %q", key)
		}
		delete(sent, key)
		if string(m.Body) != string(r.Payload) || m.GetTags() != r.Tag ||
			m.GetProperty(rmqwire.PropOutboxID) != fmt.Sprint(r.ID) ||
			rmqwire.DecodeKey(m.GetKeys()) != r.Key || strings.Contains(m.GetKeys(), " ") {
			t.Fatalf("message %v does not match record %+v", m, r)
		}
		if h := rmqwire.Headers(m.GetProperties()); !maps.Equal(h, r.Headers) {
			t.Fatalf("headers %v, want %v", h, r.Headers)
		}
		if q, seen := queueOf[r.ShardingKey]; seen && q != m.Queue.QueueId {
			t.Fatalf("sharding key %s on queues %d and %d", r.ShardingKey, q, m.Queue.QueueId)
		}
		queueOf[r.ShardingKey] = m.Queue.QueueId
	}
}

// msgRow is a row of queryMsgByKey's answer: message id, queue id, queue offset.
var msgRow = regexp.MustCompile(`(?m)^[0-9A-Fa-f]{32}\s+\d+\s+\d+\s*$`)

// TestKeyFoundByBrokerTooling runs the broker's own admin tool: an operator looking for a business key finds the
// message under it.
func TestKeyFoundByBrokerTooling(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	rmqtest.AdminPath(t)
	topic := b.Topic(t, 2)
	p := newPublisher(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	key := rmqtest.Name(t, "order") + "/payment"
	if err := p.Publish(ctx, outbox.Record{ID: 7, Message: outbox.Message{Topic: topic, Key: key, Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	spaced := key + " with spaces"
	if err := p.Publish(ctx, outbox.Record{ID: 8, Message: outbox.Message{Topic: topic, Key: spaced, Payload: []byte("y")}}); err != nil {
		t.Fatal(err)
	}
	// The index is built asynchronously after the write: poll.
	for _, k := range []string{key, rmqwire.EncodeKey(spaced)} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			out := rmqtest.Admin(t, "queryMsgByKey", "-n", b.Namesrv, "-t", topic, "-k", k)
			if msgRow.MatchString(out) {
				t.Logf("info: queryMsgByKey -k %s:\n%s", k, out)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("queryMsgByKey -t %s -k %s did not find the message:\n%s", topic, k, out)
			}
		}
	}
}

// TestOnlySendOKCounts makes the broker's answer FlushDiskTimeout (through a client interceptor, since a healthy
// single broker never answers that): the client reports success, Publish must not.
func TestOnlySendOKCounts(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	topic := b.Topic(t, 1)
	for _, status := range []primitive.SendStatus{primitive.SendFlushDiskTimeout, primitive.SendFlushSlaveTimeout,
		primitive.SendSlaveNotAvailable} {
		downgrade := func(ctx context.Context, req, reply interface{}, next primitive.Invoker) error {
			err := next(ctx, req, reply)
			if res, ok := reply.(*primitive.SendResult); ok && err == nil {
				res.Status = status
			}
			return err
		}
		p := newPublisher(t, b, producer.WithInterceptor(downgrade))
		err := p.Publish(context.Background(), outbox.Record{ID: 1, Message: outbox.Message{Topic: topic, Key: "k", Payload: []byte("x")}})
		var se *rocketmq.StatusError
		if !errors.Is(err, rocketmq.ErrNotDurable) || !errors.As(err, &se) || se.Status != status {
			t.Fatalf("status %d: err = %v, want ErrNotDurable with that status", status, err)
		}
	}
}

func TestPublishHonoursContext(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	topic := b.Topic(t, 1)
	p := newPublisher(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := outbox.Record{ID: 1, Message: outbox.Message{Topic: topic, Key: "k", Payload: []byte("x")}}
	if err := p.Publish(ctx, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: err = %v", err)
	}
	// A deadline that passes during the send: the call returns by then, with an error, not later.
	slow := func(ctx context.Context, req, reply interface{}, next primitive.Invoker) error {
		<-ctx.Done()
		return ctx.Err()
	}
	ps := newPublisher(t, b, producer.WithInterceptor(slow))
	dctx, dcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer dcancel()
	start := time.Now()
	if err := ps.Publish(dctx, r); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Publish returned %s after its deadline", d)
	}
}

func TestShutdownWaitsAndRejects(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	topic := b.Topic(t, 1)
	release := make(chan struct{})
	entered := make(chan struct{})
	var armed, held atomic.Bool
	hold := func(ctx context.Context, req, reply interface{}, next primitive.Invoker) error {
		if armed.Load() && held.CompareAndSwap(false, true) { // only the first send after arming is held
			close(entered)
			<-release
		}
		return next(ctx, req, reply)
	}
	p := newPublisher(t, b, producer.WithInterceptor(hold))
	r := outbox.Record{ID: 1, Message: outbox.Message{Topic: topic, Key: "k", Payload: []byte("x")}}
	if err := p.Publish(context.Background(), r); err != nil { // the topic's route is loaded
		t.Fatal(err)
	}
	armed.Store(true)
	var wg sync.WaitGroup
	var pubErr error
	wg.Add(1)
	go func() { defer wg.Done(); pubErr = p.Publish(context.Background(), r) }()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- p.Shutdown(context.Background()) }()
	// Shutdown must not return while the send is in flight; new publishes are refused meanwhile.
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A publish that slipped in before Shutdown may queue behind the held send (same batch lane): bound it.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := p.Publish(ctx, r)
		cancel()
		if errors.Is(err, rocketmq.ErrClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Publish after Shutdown began was not refused")
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a publish was in flight", err)
	default:
	}
	close(release)
	wg.Wait()
	if pubErr != nil {
		t.Fatalf("in-flight publish: %v", pubErr)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestBatchingCoalescesConcurrentPublishes: concurrent Publish calls share send requests, every message arrives
// intact with its own message id, and a sharding key lands on the same queue batched or not.
func TestBatchingCoalescesConcurrentPublishes(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	topic := b.Topic(t, 4)
	var requests atomic.Int64
	count := func(ctx context.Context, req, reply interface{}, next primitive.Invoker) error {
		requests.Add(1)
		return next(ctx, req, reply)
	}
	batched := newPublisher(t, b, producer.WithInterceptor(count))
	single, err := rocketmq.New(rocketmq.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "S"), MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := func(i int, prefix string) outbox.Record {
		return outbox.Record{ID: int64(i), Message: outbox.Message{Topic: topic, Key: fmt.Sprintf("%s/%d", prefix, i),
			ShardingKey: fmt.Sprintf("sk-%d", i%16), Payload: []byte(fmt.Sprint(i))}}
	}
	// One message per sharding key alone, for the reference queue.
	for i := range 16 {
		if err := single.Publish(ctx, rec(i, "single")); err != nil {
			t.Fatal(err)
		}
	}
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := batched.Publish(ctx, rec(i, "batched")); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if r := requests.Load(); r >= n {
		t.Fatalf("%d send requests for %d messages: nothing was batched", r, n)
	} else {
		t.Logf("info: %d messages in %d send requests", n, r)
	}
	queueOf := map[string]int{}
	ids := map[string]bool{}
	got := b.Collect(t, topic)
	for range n + 16 {
		var m *primitive.MessageExt
		select {
		case m = <-got:
		case <-ctx.Done():
			t.Fatal("not every message arrived")
		}
		if ids[m.MsgId] {
			t.Fatalf("message id %s seen twice", m.MsgId)
		}
		ids[m.MsgId] = true
		key := m.GetProperty(rmqwire.PropKey)
		var i int
		fmt.Sscan(string(m.Body), &i)
		if !strings.HasSuffix(key, "/"+string(m.Body)) || m.GetShardingKey() != fmt.Sprintf("sk-%d", i%16) {
			t.Fatalf("message %s: key %q, body %q, sharding key %q", m.MsgId, key, m.Body, m.GetShardingKey())
		}
		sk := m.GetShardingKey()
		if q, ok := queueOf[sk]; ok && q != m.Queue.QueueId {
			t.Fatalf("sharding key %s on queues %d and %d", sk, q, m.Queue.QueueId)
		}
		queueOf[sk] = m.Queue.QueueId
	}
}

// TestDeliverAtDelaysDelivery: a record whose DeliverAt is still ahead becomes a timer message that the broker
// hands out at that instant, not before.
func TestDeliverAtDelaysDelivery(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	topic := b.Topic(t, 1)
	p := newPublisher(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	at := time.Now().Add(3 * time.Second)
	if err := p.Publish(ctx, outbox.Record{ID: 1, Message: outbox.Message{Topic: topic, Key: "later", Payload: []byte("x"), DeliverAt: at}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, outbox.Record{ID: 2, Message: outbox.Message{Topic: topic, Key: "now", Payload: []byte("y")}}); err != nil {
		t.Fatal(err)
	}
	got := b.Collect(t, topic)
	for range 2 {
		select {
		case m := <-got:
			arrived := time.Now()
			if m.GetProperty(rmqwire.PropKey) == "later" && arrived.Before(at.Add(-100*time.Millisecond)) {
				t.Fatalf("timer message arrived %s before its DeliverAt", at.Sub(arrived))
			}
		case <-ctx.Done():
			t.Fatal("messages did not arrive")
		}
	}
}
