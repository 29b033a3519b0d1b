package publishertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// Received is a message as the broker delivered it to the harness's reader.
type Received struct {
	Topic   string
	Key     string
	Tag     string
	Payload []byte
	// Headers are the message's user properties. Brokers add their own; the suite checks that the published
	// headers are all present with their values and ignores the rest.
	Headers map[string]string
}

// Harness is one Publisher under test and the means to observe its broker. Run calls the constructor once per
// subtest, so each subtest has a fresh topic.
type Harness struct {
	// Publisher is the Publisher under test. Required.
	Publisher relay.Publisher
	// Topic is the topic the suite publishes to. Only this subtest may use it. Required.
	Topic string
	// Receive waits until the broker has delivered at least n messages on Topic since the harness was made
	// and returns all of them, or returns ctx's error. Messages of one sharding key must be returned in the
	// order the broker delivers them (for RocketMQ: the order of their message queue). Required.
	Receive func(ctx context.Context, n int) ([]Received, error)
	// Broken, if set, returns a Publisher whose broker cannot accept anything (stopped, unreachable, or
	// rejecting the topic); its Publish must return an error. Nil skips that check.
	Broken func(t *testing.T) relay.Publisher
	// Timeout bounds each wait. Default 60s.
	Timeout time.Duration
}

// Run runs the conformance suite against the Publisher that newHarness builds.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("RecordsArriveIntact", func(t *testing.T) { testIntact(t, setup(t, newHarness)) })
	t.Run("ShardingKeyOrder", func(t *testing.T) { testOrder(t, setup(t, newHarness)) })
	t.Run("ConcurrentPublishes", func(t *testing.T) { testConcurrent(t, setup(t, newHarness)) })
	t.Run("ErrorsPropagate", func(t *testing.T) { testErrors(t, setup(t, newHarness)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancel(t, setup(t, newHarness)) })
}

func setup(t *testing.T, newHarness func(t *testing.T) Harness) Harness {
	t.Helper()
	h := newHarness(t)
	if h.Publisher == nil || h.Topic == "" || h.Receive == nil {
		t.Fatal("publishertest: Harness needs Publisher, Topic and Receive")
	}
	if h.Timeout == 0 {
		h.Timeout = 60 * time.Second
	}
	return h
}

var nextID struct {
	sync.Mutex
	n int64
}

func record(topic, key, tag, shard string, payload []byte, headers map[string]string) outbox.Record {
	nextID.Lock()
	nextID.n++
	id := nextID.n
	nextID.Unlock()
	return outbox.Record{ID: id, Attempt: 1, CreatedAt: time.Now(), Message: outbox.Message{
		Topic: topic, Key: key, Tag: tag, ShardingKey: shard, Payload: payload, Headers: headers}}
}

func publish(t *testing.T, h Harness, r outbox.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	if err := h.Publisher.Publish(ctx, r); err != nil {
		t.Fatalf("Publish %q: %v", r.Key, err)
	}
}

func receive(t *testing.T, h Harness, n int) []Received {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	got, err := h.Receive(ctx, n)
	if err != nil {
		t.Fatalf("receive %d messages: %v", n, err)
	}
	return got
}

// byKey indexes received messages by key; a key received twice is allowed (at least once) but must be
// identical.
func byKey(t *testing.T, got []Received) map[string]Received {
	t.Helper()
	m := make(map[string]Received, len(got))
	for _, g := range got {
		if prev, ok := m[g.Key]; ok && !bytes.Equal(prev.Payload, g.Payload) {
			t.Errorf("key %q received twice with different payloads", g.Key)
		}
		m[g.Key] = g
	}
	return m
}

func testIntact(t *testing.T, h Harness) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	binary := []byte{0, 1, 2, 0xfe, 0xff, '\n', '\r', 0}
	cases := []outbox.Record{
		record(h.Topic, "plain/1", "", "", []byte("hello"), nil),
		record(h.Topic, "tagged/2", "created", "", []byte(`{"id":2}`), nil),
		record(h.Topic, "headers/3", "t", "", []byte("h"), map[string]string{"trace-id": "abc", "tenant": "ünïcode ✓", "empty": ""}),
		record(h.Topic, "binary/4", "", "", binary, nil),
		record(h.Topic, "big/5", "", "", big, nil),
		record(h.Topic, "sharded/6", "", "order-6", []byte("s"), map[string]string{"k": "v"}),
		record(h.Topic, "Case/7", "", "", []byte("upper"), nil),
		record(h.Topic, "case/7", "", "", []byte("lower"), nil),
		record(h.Topic, "spaces/8 ", "", "", []byte("trailing space"), nil),
		record(h.Topic, "unicode/9/ключ", "", "", []byte("u"), nil),
		record(h.Topic, "empty-payload/10", "", "", []byte{}, nil),
	}
	for _, r := range cases {
		publish(t, h, r)
	}
	got := byKey(t, receive(t, h, len(cases)))
	for _, want := range cases {
		g, ok := got[want.Key]
		if !ok {
			t.Errorf("key %q not received (keys must be kept byte for byte)", want.Key)
			continue
		}
		if g.Topic != "" && g.Topic != want.Topic {
			t.Errorf("%q: topic %q, want %q", want.Key, g.Topic, want.Topic)
		}
		if g.Tag != want.Tag {
			t.Errorf("%q: tag %q, want %q", want.Key, g.Tag, want.Tag)
		}
		if !bytes.Equal(g.Payload, want.Payload) && !(len(g.Payload) == 0 && len(want.Payload) == 0) {
			t.Errorf("%q: payload of %d bytes differs from the %d published", want.Key, len(g.Payload), len(want.Payload))
		}
		for k, v := range want.Headers {
			if gv, ok := g.Headers[k]; !ok || gv != v {
				t.Errorf("%q: header %q = %q (present %v), want %q", want.Key, k, gv, ok, v)
			}
		}
	}
}

func testOrder(t *testing.T, h Harness) {
	const shards, per = 5, 20
	var wg sync.WaitGroup
	errs := make(chan error, shards)
	for s := range shards {
		wg.Go(func() { // shards in parallel, each shard's records one after another, as the relay does
			for i := range per {
				r := record(h.Topic, fmt.Sprintf("shard-%d/%03d", s, i), "", "shard-"+strconv.Itoa(s), []byte(strconv.Itoa(i)), nil)
				ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
				err := h.Publisher.Publish(ctx, r)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("publish %s: %w", r.Key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := receive(t, h, shards*per)
	last := map[string]int{}
	for _, g := range got {
		shard, seq, ok := strings.Cut(g.Key, "/")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(seq)
		if prev, seen := last[shard]; seen && n < prev {
			t.Errorf("%s: %s arrived after %03d", shard, g.Key, prev)
		}
		last[shard] = n
	}
	if len(last) != shards {
		t.Errorf("messages of %d sharding keys received, want %d", len(last), shards)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	const n = 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for i := range n {
		wg.Go(func() {
			r := record(h.Topic, "concurrent/"+strconv.Itoa(i), "", "", []byte(strconv.Itoa(i)), nil)
			ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
			defer cancel()
			if err := h.Publisher.Publish(ctx, r); err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d concurrent publishes failed, first: %v", len(failed), n, failed[0])
	}
	got := byKey(t, receive(t, h, n))
	for i := range n {
		if _, ok := got["concurrent/"+strconv.Itoa(i)]; !ok {
			t.Errorf("concurrent/%d not received", i)
		}
	}
}

func testErrors(t *testing.T, h Harness) {
	if h.Broken == nil {
		t.Skip("Harness.Broken not set")
	}
	p := h.Broken(t)
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	err := p.Publish(ctx, record(h.Topic, "broken/1", "", "", []byte("x"), nil))
	if err == nil {
		t.Fatal("Publish to a broken broker returned nil: nil must mean durably accepted")
	}
}

func testCancel(t *testing.T, h Harness) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err := h.Publisher.Publish(ctx, record(h.Topic, "cancelled/1", "", "", []byte("x"), nil))
	if err == nil {
		t.Fatal("Publish with a cancelled context returned nil")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context returned %v, which does not wrap context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Publish with a cancelled context took %s", d)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	err = h.Publisher.Publish(ctx, record(h.Topic, "expired/1", "", "", []byte("x"), nil))
	if err == nil {
		t.Fatal("Publish with an expired deadline returned nil")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish with an expired deadline returned %v, which does not wrap context.DeadlineExceeded", err)
	}
}
