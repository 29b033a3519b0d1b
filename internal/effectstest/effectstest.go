package effectstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/txbox/txbox/inbox"
)

// Target is one EffectStore under test.
type Target struct {
	Store inbox.EffectStore
	// Spec tells a subprocess how to open the same store (SQLSpec, RedisSpec); see MaybeChild.
	Spec string
}

// testCase is one conformance case. Cases share the target's store, each under consumers of its own.
type testCase struct {
	name string
	fn   func(t *testing.T, h *harness)
}

var suite = []testCase{
	{"RunOnce", testRunOnce},
	{"Busy", testBusy},
	{"ReleaseRunsAgain", testReleaseRunsAgain},
	{"PanicIsAFailedRun", testPanic},
	{"ParkedAfterMaxAttempts", testParkAfterMaxAttempts},
	{"TakenOverAfterLease", testTakeover},
	{"ExpiredLeasesPark", testExpiredLeasesPark},
	{"LateOwnerCompletes", testLateOwnerCompletes},
	{"FingerprintMismatch", testMismatch},
	{"ResultBounds", testResultBounds},
	{"CompleteRetried", testCompleteRetried},
	{"Replay", testReplay},
	{"DropDead", testDropDead},
	{"ListDeadPaging", testListDeadPaging},
	{"Park", testPark},
	{"ByteExactKeys", testByteExactKeys},
	{"Check", testCheck},
	{"ConcurrentDeliveries", testConcurrentDeliveries},
	{"KilledBetweenActingAndCompleting", testKilled},
	{"ManyKeysWithFailures", testManyKeys},
}

// Run runs every case of the conformance suite on tg as parallel subtests of t.
func Run(t *testing.T, tg Target) {
	for _, c := range suite {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
			t.Cleanup(cancel)
			c.fn(t, &harness{tg: tg, ctx: ctx, consumer: uniqueName("fx-")})
		})
	}
}

// harness is one case's store, with a consumer name of its own.
type harness struct {
	tg       Target
	ctx      context.Context
	consumer string
}

func uniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// effects returns Effects on the case's store for its consumer, with cfg's other fields.
func (h *harness) effects(t *testing.T, cfg inbox.EffectsConfig) *inbox.Effects {
	t.Helper()
	if cfg.Consumer == "" {
		cfg.Consumer = h.consumer
	}
	fx, err := inbox.NewEffects(h.tg.Store, cfg)
	if err != nil {
		t.Fatalf("NewEffects: %v", err)
	}
	return fx
}

func delivery(key string) inbox.Delivery {
	return inbox.Delivery{Key: key, Payload: []byte("payload of " + key), Headers: map[string]string{"h": key, "empty": ""},
		Topic: "orders", MessageID: "msg-" + key}
}

func (h *harness) begin(t *testing.T, fx *inbox.Effects, d inbox.Delivery) *inbox.Claim {
	t.Helper()
	c, err := fx.Begin(h.ctx, d)
	if err != nil {
		t.Fatalf("Begin(%q): %v", d.Key, err)
	}
	return c
}

// acquire begins d and fails unless the claim is acquired.
func (h *harness) acquire(t *testing.T, fx *inbox.Effects, d inbox.Delivery) *inbox.Claim {
	t.Helper()
	c := h.begin(t, fx, d)
	if c.Status != inbox.EffectAcquired {
		t.Fatalf("Begin(%q) = %+v, want acquired", d.Key, c)
	}
	return c
}

// waitAcquire begins d until the claim is acquired (a lease expired), failing after 30s.
func (h *harness) waitAcquire(t *testing.T, fx *inbox.Effects, d inbox.Delivery) *inbox.Claim {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := fx.Begin(h.ctx, d)
		switch {
		case err == nil && c.Status == inbox.EffectAcquired:
			return c
		case err == nil:
			t.Fatalf("Begin(%q) while waiting for the lease to expire = %+v", d.Key, c)
		case !errors.Is(err, inbox.ErrBusy):
			t.Fatalf("Begin(%q) while waiting for the lease to expire: %v", d.Key, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Begin(%q) still busy after 30s", d.Key)
		}
		time.Sleep(20 * time.Millisecond) // polling the store, not waiting for work of ours
	}
}

func (h *harness) run(t *testing.T, fx *inbox.Effects, d inbox.Delivery, fn inbox.EffectFunc) (inbox.Result, error) {
	t.Helper()
	return fx.Run(h.ctx, d, fn)
}

// counter is a downstream system in the test's process: it counts effects per idempotency key.
type counter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *counter) effect(result string, err error) inbox.EffectFunc {
	return func(ctx context.Context, cl *inbox.Claim) ([]byte, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.calls == nil {
			c.calls = map[string]int{}
		}
		c.calls[cl.Key]++
		if err != nil {
			return nil, err
		}
		return []byte(result), nil
	}
}

func (c *counter) n(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[key]
}

func wantResult(t *testing.T, what string, got inbox.Result, err error, want inbox.Result) {
	t.Helper()
	if err != nil || got != want {
		t.Fatalf("%s = %v, %v; want %v", what, got, err, want)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one matching %q", what, err, target)
	}
}

func wantContains(t *testing.T, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s = %q, want it to contain %q", what, s, sub)
	}
}

// deadKeys lists the keys of dead letters.
func deadKeys(dls []inbox.EffectDeadLetter) []string {
	out := make([]string, len(dls))
	for i, dl := range dls {
		out[i] = dl.Delivery.Key
	}
	return out
}

func (h *harness) listDead(t *testing.T, fx *inbox.Effects, f inbox.EffectDeadFilter) []inbox.EffectDeadLetter {
	t.Helper()
	dls, err := fx.ListDead(h.ctx, f)
	if err != nil {
		t.Fatalf("ListDead(%+v): %v", f, err)
	}
	return dls
}
