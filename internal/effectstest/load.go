package effectstest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/txbox/txbox/inbox"
)

// 16 concurrent deliveries of one key: the effect runs once. The one run that acquires the key holds it until
// every other delivery has been turned away busy at least once; each then comes back, as a broker redelivers,
// and finds it completed.
func testConcurrentDeliveries(t *testing.T, h *harness) {
	const n = 16
	fx := h.effects(t, inbox.EffectsConfig{})
	d := delivery("k")
	var calls, turnedAway atomic.Int32
	release := make(chan struct{})
	results := make([]inbox.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			busy := false
			for {
				res, err := fx.Run(h.ctx, d, func(ctx context.Context, c *inbox.Claim) ([]byte, error) {
					calls.Add(1)
					select {
					case <-release:
						return []byte("charged"), nil
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				})
				if errors.Is(err, inbox.ErrBusy) && h.ctx.Err() == nil {
					if !busy {
						busy = true
						turnedAway.Add(1)
					}
					time.Sleep(5 * time.Millisecond) // the broker's redelivery delay, shortened
					continue
				}
				if err != nil {
					t.Errorf("delivery %d: %v", i, err)
				}
				results[i] = res
				return
			}
		})
	}
	poll(t, "15 deliveries to be turned away busy", func() bool { return turnedAway.Load() == n-1 })
	close(release)
	wg.Wait()
	if c := calls.Load(); c != 1 {
		t.Errorf("the effect ran %d times for %d concurrent deliveries, want 1", c, n)
	}
	count := map[inbox.Result]int{}
	for _, r := range results {
		count[r]++
	}
	if count[inbox.Processed] != 1 || count[inbox.Duplicate] != n-1 {
		t.Errorf("results %v, want 1 processed and %d duplicates", count, n-1)
	}
}

// 2,000 keys, each delivered 3 times in shuffled order to 8 workers, with 10% of runs failing: every key's
// effect completes exactly once, and failed runs (and busy deliveries) are delivered again until they do.
func testManyKeys(t *testing.T, h *harness) {
	const keys, copies, workers = 2000, 3, 8
	fx := h.effects(t, inbox.EffectsConfig{})
	queue := make(chan inbox.Delivery, keys*copies)
	var all []inbox.Delivery
	for k := range keys {
		d := delivery(fmt.Sprintf("order-%d/payment", k))
		for range copies {
			all = append(all, d)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, d := range all {
		queue <- d
	}
	var (
		mu        sync.Mutex
		completed = map[string]int{}
		outcomes  = map[inbox.Result]int{}
		failed    atomic.Int64
		busy      atomic.Int64
		left      atomic.Int64
	)
	left.Store(int64(len(all)))
	effect := func(ctx context.Context, c *inbox.Claim) ([]byte, error) {
		if failing(c.Key, c.Attempt) {
			return nil, errors.New("injected failure")
		}
		mu.Lock()
		completed[c.Key]++
		mu.Unlock()
		return []byte("ok"), nil
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for d := range queue {
				res, err := fx.Run(h.ctx, d, effect)
				switch {
				case errors.Is(err, inbox.ErrBusy):
					busy.Add(1)
					queue <- d // delivered again later
					continue
				case err != nil && h.ctx.Err() == nil && strings.Contains(err.Error(), "injected failure"):
					failed.Add(1)
					queue <- d
					continue
				case err != nil:
					t.Errorf("Run(%q): %v", d.Key, err)
					if h.ctx.Err() != nil {
						return
					}
				}
				mu.Lock()
				outcomes[res]++
				mu.Unlock()
				if left.Add(-1) == 0 {
					close(queue)
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		key := fmt.Sprintf("order-%d/payment", k)
		if n := completed[key]; n != 1 {
			t.Errorf("key %s completed %d times, want 1", key, n)
		}
	}
	if outcomes[inbox.Processed] != keys || outcomes[inbox.Duplicate] != keys*(copies-1) {
		t.Errorf("outcomes %v, want %d processed and %d duplicates", outcomes, keys, keys*(copies-1))
	}
	if failed.Load() == 0 {
		t.Error("no run failed: the 10% failures were not injected")
	}
	t.Logf("%d deliveries: %d failed runs retried, %d busy deliveries retried", len(all), failed.Load(), busy.Load())
}

// failing decides, the same way in every run of the test, whether attempt of key fails: about one in ten.
func failing(key string, attempt int) bool {
	f := fnv.New32a()
	fmt.Fprintf(f, "%s#%d", key, attempt)
	return f.Sum32()%10 == 0
}

// poll calls cond every few milliseconds until it is true, and fails the test after 60s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A consumer killed (SIGKILL) between acting and completing: after its lease the key is taken over, and the
// downstream system sees the same idempotency key again, so it charges once.
func testKilled(t *testing.T, h *harness) {
	if h.tg.Spec == "" {
		t.Skip("the target has no Spec: a subprocess cannot open its store")
	}
	gw := newGateway(t)
	const lease = time.Second
	key := "order-7/payment"
	cmd := exec.CommandContext(h.ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childSpec+"="+h.tg.Spec, childConsumer+"="+h.consumer,
		childKey+"="+key, childLease+"="+lease.String(), childGateway+"="+gw.url)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the consumer subprocess: %v", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "acted ") {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("subprocess said %q, %v; want \"acted <charge>\"", line, err)
	}
	first := strings.TrimSpace(strings.TrimPrefix(line, "acted "))
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred code, no Release
		t.Fatal(err)
	}
	_ = cmd.Wait()

	fx := h.effects(t, inbox.EffectsConfig{Lease: lease})
	c := h.waitAcquire(t, fx, delivery(key))
	if !c.TakenOver || c.Attempt != 2 || c.Key != key {
		t.Fatalf("claim after the killed consumer's lease = %+v, want taken over as attempt 2", c)
	}
	charge, err := gw.charge(h.ctx, c.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(h.ctx, []byte(charge)); err != nil {
		t.Fatal(err)
	}
	if charge != first {
		t.Errorf("the gateway charged %q on the second call, want the first call's charge %q", charge, first)
	}
	if keys := gw.keys(); len(keys) != 2 || keys[0] != key || keys[1] != key {
		t.Errorf("gateway saw idempotency keys %q, want %q twice", keys, key)
	}
	if n := gw.charges(); n != 1 {
		t.Errorf("gateway charged %d times, want 1", n)
	}
	if dup := h.begin(t, fx, delivery(key)); dup.Status != inbox.EffectCompleted || string(dup.Result) != first {
		t.Errorf("Begin after completion = %+v, want the charge %q", dup, first)
	}
}
