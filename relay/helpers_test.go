package relay_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func newOutbox(t *testing.T, db *testdb.DB) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	return ob
}

// enqueue commits msgs in one transaction.
func enqueue(t testing.TB, db *testdb.DB, ob *outbox.Outbox, msgs ...outbox.Message) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(ctx, tx, msgs...); err != nil {
		_ = tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// enqueueMany commits n messages made by mk in transactions of up to 1000.
func enqueueMany(t testing.TB, db *testdb.DB, ob *outbox.Outbox, n int, mk func(i int) outbox.Message) {
	t.Helper()
	for start := 0; start < n; start += 1000 {
		var msgs []outbox.Message
		for i := start; i < min(n, start+1000); i++ {
			msgs = append(msgs, mk(i))
		}
		enqueue(t, db, ob, msgs...)
	}
}

func count(t testing.TB, db *testdb.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func newRelay(t testing.TB, db *testdb.DB, pub relay.Publisher, edit func(*relay.Config)) *relay.Relay {
	t.Helper()
	cfg := relay.Config{Dialect: db.Dialect, Publisher: pub, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		MaxAttempts: 1000, MinPollInterval: time.Millisecond, MaxPollInterval: 50 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	r, err := relay.New(db.DB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runRelay starts r.Run and returns a stop function that cancels it and checks it returned nil.
func runRelay(t testing.TB, r *relay.Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitUntil polls cond until it holds or the deadline passes (no fixed sleeps: it re-checks every few ms).
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var errInjected = errors.New("injected publish failure")

// testPub is a Publisher for relay tests: it fails a fraction of calls, "loses the confirm" on another
// fraction (accepts the record, then returns an error), detects two concurrent publishes of one row, and
// checks that each sharding key's rows arrive in order (Headers["seq"] numbers them per key).
type testPub struct {
	failRate, loseRate float64
	// block, if set, is called inside Publish (after acceptance checks, before accepting).
	block func(r outbox.Record)

	mu         sync.Mutex
	rng        *rand.Rand
	inflight   map[int64]bool
	concurrent []int64
	keyFlight  map[string]int // by sharding key: publishes in flight
	keyConcur  []string
	accepted   map[string]int // by Key: times accepted (including lost confirms)
	lost       int
	maxSeq     map[string]int // by sharding key: highest seq accepted
	orderErrs  []string
	changed    chan struct{}
}

func newTestPub(failRate, loseRate float64) *testPub {
	return &testPub{failRate: failRate, loseRate: loseRate, rng: rand.New(rand.NewPCG(1, 2)),
		inflight: map[int64]bool{}, keyFlight: map[string]int{}, accepted: map[string]int{}, maxSeq: map[string]int{}}
}

func (p *testPub) Publish(ctx context.Context, r outbox.Record) error {
	p.mu.Lock()
	if p.inflight[r.ID] {
		p.concurrent = append(p.concurrent, r.ID)
	}
	p.inflight[r.ID] = true
	if r.ShardingKey != "" {
		if p.keyFlight[r.ShardingKey]++; p.keyFlight[r.ShardingKey] > 1 {
			p.keyConcur = append(p.keyConcur, r.ShardingKey)
		}
	}
	roll := p.rng.Float64()
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.inflight, r.ID)
		if r.ShardingKey != "" {
			p.keyFlight[r.ShardingKey]--
		}
		p.mu.Unlock()
	}()
	if p.block != nil {
		p.block(r)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if roll < p.failRate {
		return errInjected
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accepted[r.Key]++
	if r.ShardingKey != "" {
		var seq int
		fmt.Sscan(r.Headers["seq"], &seq)
		last, seen := p.maxSeq[r.ShardingKey]
		if !seen {
			last = -1
		}
		if seq > last+1 {
			p.orderErrs = append(p.orderErrs, fmt.Sprintf("key %s: seq %d arrived after %d", r.ShardingKey, seq, last))
		}
		p.maxSeq[r.ShardingKey] = max(last, seq)
	}
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
	if roll < p.failRate+p.loseRate {
		p.lost++
		return errors.New("injected lost confirm")
	}
	return nil
}

// distinct is how many different keys were accepted.
func (p *testPub) distinct() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.accepted)
}

func (p *testPub) has(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted[key] > 0
}

// waitDistinct waits until n different keys were accepted.
func (p *testPub) waitDistinct(t testing.TB, n int, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		p.mu.Lock()
		if len(p.accepted) >= n {
			p.mu.Unlock()
			return
		}
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		ch := p.changed
		got := len(p.accepted)
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out after %s: %d of %d keys published", d, got, n)
		}
	}
}

// check reports concurrent publishes, order violations and duplicates beyond lost confirms.
func (p *testPub) check(t testing.TB, keys []string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.concurrent) > 0 {
		t.Errorf("%d rows published by two relays at once, e.g. id %d", len(p.concurrent), p.concurrent[0])
	}
	if len(p.keyConcur) > 0 {
		t.Errorf("%d publishes ran concurrently with another of the same sharding key, e.g. %s", len(p.keyConcur), p.keyConcur[0])
	}
	for i, e := range p.orderErrs {
		if i == 5 {
			break
		}
		t.Errorf("order: %s", e)
	}
	dups := 0
	for _, k := range keys {
		n := p.accepted[k]
		if n == 0 {
			t.Errorf("key %q never published", k)
		}
		if n > 1 {
			dups += n - 1
		}
	}
	if len(p.accepted) != len(keys) {
		t.Errorf("%d different keys published, want %d", len(p.accepted), len(keys))
	}
	if dups > p.lost {
		t.Errorf("%d duplicate publishes but only %d lost confirms", dups, p.lost)
	}
	t.Logf("published %d keys, %d duplicates, %d lost confirms", len(p.accepted), dups, p.lost)
}

func isRetryable(err error) bool { return errors.Is(err, dialect.ErrRetryable) }
