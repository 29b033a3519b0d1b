package effectstest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/txbox/txbox/inbox"
)

// A key's effect runs once: the first delivery runs it and saves its result, later ones are duplicates that
// find the result.
func testRunOnce(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{})
	var down counter
	d := delivery("order-1/payment")
	res, err := h.run(t, fx, d, down.effect("charge-1", nil))
	wantResult(t, "first Run", res, err, inbox.Processed)
	res, err = h.run(t, fx, d, down.effect("charge-2", nil))
	wantResult(t, "second Run", res, err, inbox.Duplicate)
	if n := down.n(d.Key); n != 1 {
		t.Errorf("effect ran %d times, want 1", n)
	}
	c := h.begin(t, fx, d)
	if c.Status != inbox.EffectCompleted || !c.Duplicate || string(c.Result) != "charge-1" {
		t.Errorf("Begin after completion = %+v, want a duplicate with result charge-1", c)
	}
	if err := c.Complete(h.ctx, nil); err == nil {
		t.Error("Complete of a duplicate claim succeeded")
	}
}

// A delivery that arrives while another run holds a live lease is busy, with the time left on the lease.
func testBusy(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{Lease: time.Hour})
	d := delivery("k")
	h.acquire(t, fx, d)
	_, err := fx.Begin(h.ctx, d)
	wantErr(t, "Begin of a running key", err, inbox.ErrBusy)
	var be *inbox.BusyError
	if !errors.As(err, &be) || be.Key != "k" || be.Consumer != h.consumer || be.RetryAfter <= 0 || be.RetryAfter > time.Hour {
		t.Errorf("BusyError = %+v, want key k, consumer %s, RetryAfter in (0, 1h]", be, h.consumer)
	}
	res, err := h.run(t, fx, d, new(counter).effect("x", nil))
	if res != inbox.Failed || !errors.Is(err, inbox.ErrBusy) {
		t.Errorf("Run of a running key = %v, %v; want Failed with ErrBusy", res, err)
	}
}

// A failed run is counted and released: the next delivery runs the effect again, as attempt 2.
func testReleaseRunsAgain(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{})
	d := delivery("k")
	boom := errors.New("gateway said 503")
	res, err := h.run(t, fx, d, new(counter).effect("", boom))
	if res != inbox.Failed || !errors.Is(err, boom) {
		t.Fatalf("Run of a failing effect = %v, %v; want Failed with the effect's error", res, err)
	}
	var attempt int
	res, err = h.run(t, fx, d, func(ctx context.Context, c *inbox.Claim) ([]byte, error) {
		attempt = c.Attempt
		if c.TakenOver {
			t.Error("a released key was reported taken over")
		}
		return []byte("ok"), nil
	})
	wantResult(t, "Run after a failure", res, err, inbox.Processed)
	if attempt != 2 {
		t.Errorf("second run's Attempt = %d, want 2", attempt)
	}
}

func testPanic(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{})
	d := delivery("k")
	res, err := h.run(t, fx, d, func(context.Context, *inbox.Claim) ([]byte, error) { panic("bad payload") })
	if res != inbox.Failed || !errors.Is(err, inbox.ErrHandlerPanic) {
		t.Fatalf("Run of a panicking effect = %v, %v; want Failed with ErrHandlerPanic", res, err)
	}
	if c := h.acquire(t, fx, d); c.Attempt != 2 {
		t.Errorf("Begin after a panic: Attempt %d, want 2", c.Attempt)
	}
}

// The run that reaches MaxAttempts parks the key with its delivery; later deliveries are Parked at once.
func testParkAfterMaxAttempts(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{MaxAttempts: 3})
	d := delivery("k")
	var down counter
	for i := 1; i <= 2; i++ {
		res, err := h.run(t, fx, d, down.effect("", fmt.Errorf("failure %d", i)))
		if res != inbox.Failed || err == nil {
			t.Fatalf("run %d = %v, %v; want Failed", i, res, err)
		}
	}
	res, err := h.run(t, fx, d, down.effect("", errors.New("failure 3")))
	wantResult(t, "third failing run", res, err, inbox.Parked)
	res, err = h.run(t, fx, d, down.effect("late", nil))
	wantResult(t, "Run of a parked key", res, err, inbox.Parked)
	if n := down.n("k"); n != 3 {
		t.Errorf("effect ran %d times, want 3", n)
	}
	if c := h.begin(t, fx, d); c.Status != inbox.EffectParked {
		t.Errorf("Begin of a parked key = %+v", c)
	}
	dls := h.listDead(t, fx, inbox.EffectDeadFilter{})
	if len(dls) != 1 {
		t.Fatalf("ListDead = %+v, want one", dls)
	}
	dl := dls[0]
	if dl.Delivery.Key != "k" || string(dl.Delivery.Payload) != "payload of k" || dl.Delivery.Topic != "orders" ||
		dl.Delivery.MessageID != "msg-k" || !maps.Equal(dl.Delivery.Headers, d.Headers) || dl.Attempts != 3 {
		t.Errorf("dead letter = %+v, want the delivery after 3 attempts", dl)
	}
	wantContains(t, "LastError", dl.LastError, "failure 3")
	if age := time.Since(dl.ParkedAt); age < -time.Minute || age > time.Minute || dl.ParkedAt.Location() != time.UTC {
		t.Errorf("ParkedAt = %v, want about now, in UTC", dl.ParkedAt)
	}
}

// A run that neither completes nor releases its key loses it when the lease expires: the next delivery takes it
// over (attempt 2, the expired run counted) and runs the effect with the same key; the old run can no longer
// complete or release it.
func testTakeover(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{Lease: 300 * time.Millisecond})
	d := delivery("k")
	old := h.acquire(t, fx, d)
	c := h.waitAcquire(t, fx, d)
	if !c.TakenOver || c.Attempt != 2 || c.Key != old.Key {
		t.Fatalf("claim after the lease expired = %+v, want taken over as attempt 2 of the same key", c)
	}
	wantErr(t, "Complete by the old owner", old.Complete(h.ctx, []byte("old")), inbox.ErrLeaseLost)
	_, err := old.Release(h.ctx, errors.New("x"))
	wantErr(t, "Release by the old owner", err, inbox.ErrLeaseLost)
	if err := c.Complete(h.ctx, []byte("new")); err != nil {
		t.Fatalf("Complete by the new owner: %v", err)
	}
	if dup := h.begin(t, fx, d); dup.Status != inbox.EffectCompleted || string(dup.Result) != "new" {
		t.Errorf("Begin after completion = %+v, want the new owner's result", dup)
	}
}

// Expired leases count as failed runs: the takeover that would be the run past MaxAttempts parks instead.
func testExpiredLeasesPark(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{Lease: 200 * time.Millisecond, MaxAttempts: 2})
	d := delivery("k")
	h.acquire(t, fx, d)
	if c := h.waitAcquire(t, fx, d); c.Attempt != 2 || !c.TakenOver {
		t.Fatalf("first takeover = %+v, want attempt 2", c)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := fx.Begin(h.ctx, d)
		if err == nil && c.Status == inbox.EffectParked {
			break
		}
		if err == nil || !errors.Is(err, inbox.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("Begin after the second lease expired = %+v, %v; want parked", c, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	dls := h.listDead(t, fx, inbox.EffectDeadFilter{Key: "k"})
	if len(dls) != 1 || dls[0].Attempts != 2 || string(dls[0].Delivery.Payload) != "payload of k" {
		t.Fatalf("ListDead = %+v, want k parked with its payload after 2 attempts", dls)
	}
	wantContains(t, "LastError", dls[0].LastError, "lease expired")
}

// A run whose lease expired but that nobody took over still completes.
func testLateOwnerCompletes(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{Lease: 50 * time.Millisecond})
	d := delivery("k")
	c := h.acquire(t, fx, d)
	time.Sleep(100 * time.Millisecond) // let the lease expire: what is tested is that nothing else happens
	if err := c.Complete(h.ctx, []byte("late")); err != nil {
		t.Fatalf("Complete after the lease expired, nobody took over: %v", err)
	}
	if dup := h.begin(t, fx, d); dup.Status != inbox.EffectCompleted || string(dup.Result) != "late" {
		t.Errorf("Begin = %+v, want completed with result late", dup)
	}
}

func testMismatch(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{})
	d := delivery("k")
	res, err := h.run(t, fx, d, new(counter).effect("r", nil))
	wantResult(t, "Run", res, err, inbox.Processed)
	other := d
	other.Payload = []byte("another payload")
	_, err = fx.Begin(h.ctx, other)
	wantErr(t, "Begin with another payload", err, inbox.ErrFingerprintMismatch)
	var fm *inbox.FingerprintMismatchError
	if !errors.As(err, &fm) || fm.Key != "k" || fm.Consumer != h.consumer || bytes.Equal(fm.Recorded, fm.Received) {
		t.Errorf("mismatch error = %+v", fm)
	}
	_, err = fx.Begin(h.ctx, inbox.Delivery{Key: ""})
	wantErr(t, "Begin with an empty key", err, inbox.ErrInvalidDelivery)
}

// Results are bounded: a result over MaxResultBytes is refused without writing, and the claim still holds the
// key; an empty result reads back as nil.
func testResultBounds(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{MaxResultBytes: 8})
	c := h.acquire(t, fx, delivery("k"))
	wantErr(t, "Complete with 9 bytes", c.Complete(h.ctx, []byte("123456789")), inbox.ErrInvalidResult)
	if c.Status != inbox.EffectAcquired {
		t.Errorf("claim after a refused Complete = %+v, want still acquired", c)
	}
	if err := c.Complete(h.ctx, []byte("12345678")); err != nil {
		t.Fatalf("Complete with 8 bytes: %v", err)
	}
	if dup := h.begin(t, fx, delivery("k")); string(dup.Result) != "12345678" {
		t.Errorf("saved result = %q", dup.Result)
	}
	c = h.acquire(t, fx, delivery("empty"))
	if err := c.Complete(h.ctx, []byte{}); err != nil {
		t.Fatal(err)
	}
	if dup := h.begin(t, fx, delivery("empty")); dup.Status != inbox.EffectCompleted || dup.Result != nil {
		t.Errorf("Begin of a key completed with an empty result = %+v, want a nil Result", dup)
	}
	// Run counts an over-long result as a failed run: it could not be saved.
	res, err := h.run(t, fx, delivery("long"), new(counter).effect("far too long", nil))
	if res != inbox.Failed || !errors.Is(err, inbox.ErrInvalidResult) {
		t.Errorf("Run with an over-long result = %v, %v; want Failed with ErrInvalidResult", res, err)
	}
	if c := h.acquire(t, fx, delivery("long")); c.Attempt != 2 {
		t.Errorf("Begin after an over-long result: attempt %d, want 2", c.Attempt)
	}
}

// A completion retried by its owner (after a lost reply) succeeds again; another owner's does not.
func testCompleteRetried(t *testing.T, h *harness) {
	st := h.tg.Store
	d := delivery("k")
	sum := sha256.Sum256(d.Payload)
	own := bytes.Repeat([]byte{7}, 16)
	r, err := st.BeginEffect(h.ctx, &inbox.EffectBeginParams{Consumer: h.consumer, Delivery: d, Fingerprint: sum[:],
		Owner: own, Lease: time.Hour, Retention: 2 * time.Hour, MaxAttempts: 10, ExpiredError: "expired"})
	if err != nil || r.Status != inbox.EffectAcquired {
		t.Fatalf("BeginEffect = %+v, %v", r, err)
	}
	for i := range 2 {
		ok, err := st.CompleteEffect(h.ctx, &inbox.EffectCompleteParams{Consumer: h.consumer, Key: "k", Owner: own,
			Result: []byte("r"), Retention: 2 * time.Hour})
		if err != nil || !ok {
			t.Fatalf("CompleteEffect call %d by the owner = %v, %v; want true", i+1, ok, err)
		}
	}
	ok, err := st.CompleteEffect(h.ctx, &inbox.EffectCompleteParams{Consumer: h.consumer, Key: "k",
		Owner: bytes.Repeat([]byte{8}, 16), Result: []byte("x"), Retention: 2 * time.Hour})
	if err != nil || ok {
		t.Errorf("CompleteEffect by another owner = %v, %v; want false", ok, err)
	}
}

// Replay runs a parked key's effect once more: a failure parks it again with the new error, a success completes
// it; a key that is not parked is not found.
func testReplay(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{MaxAttempts: 1})
	d := delivery("k")
	res, err := h.run(t, fx, d, new(counter).effect("", errors.New("first failure")))
	wantResult(t, "failing run at MaxAttempts 1", res, err, inbox.Parked)

	var seen inbox.Delivery
	res, err = fx.Replay(h.ctx, "k", func(ctx context.Context, c *inbox.Claim) ([]byte, error) {
		return nil, errors.New("replay failure")
	})
	if res != inbox.Failed || err == nil {
		t.Fatalf("failing Replay = %v, %v; want Failed", res, err)
	}
	dls := h.listDead(t, fx, inbox.EffectDeadFilter{})
	if len(dls) != 1 || dls[0].Attempts != 2 {
		t.Fatalf("after a failing replay ListDead = %+v, want k parked again after 2 attempts", dls)
	}
	wantContains(t, "LastError", dls[0].LastError, "replay failure")

	res, err = fx.Replay(h.ctx, "k", func(ctx context.Context, c *inbox.Claim) ([]byte, error) {
		seen = inbox.Delivery{Key: c.Key}
		return []byte("replayed"), nil
	})
	wantResult(t, "Replay", res, err, inbox.Processed)
	if seen.Key != "k" {
		t.Errorf("replayed claim's key = %q", seen.Key)
	}
	if dup := h.begin(t, fx, d); dup.Status != inbox.EffectCompleted || string(dup.Result) != "replayed" {
		t.Errorf("Begin after a replay = %+v, want completed with the replay's result", dup)
	}
	if dls := h.listDead(t, fx, inbox.EffectDeadFilter{}); len(dls) != 0 {
		t.Errorf("ListDead after a replay = %+v", dls)
	}
	_, err = fx.Replay(h.ctx, "k", new(counter).effect("", nil))
	wantErr(t, "Replay of a completed key", err, inbox.ErrDeadNotFound)
}

func testDropDead(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{})
	d := delivery("k")
	if res, err := fx.Park(h.ctx, d, errors.New("undecodable")); res != inbox.Parked || err != nil {
		t.Fatalf("Park = %v, %v", res, err)
	}
	if err := fx.DropDead(h.ctx, "k"); err != nil {
		t.Fatalf("DropDead: %v", err)
	}
	wantErr(t, "DropDead again", fx.DropDead(h.ctx, "k"), inbox.ErrDeadNotFound)
	wantErr(t, "DropDead of an unknown key", fx.DropDead(h.ctx, "nope"), inbox.ErrDeadNotFound)
	if dup := h.begin(t, fx, d); dup.Status != inbox.EffectCompleted || dup.Result != nil {
		t.Errorf("Begin after DropDead = %+v, want completed without a result", dup)
	}
}

func testListDeadPaging(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{})
	for _, k := range []string{"b", "a", "e", "c", "d"} {
		if res, err := fx.Park(h.ctx, delivery(k), errors.New("x")); res != inbox.Parked || err != nil {
			t.Fatalf("Park(%s) = %v, %v", k, res, err)
		}
	}
	other := h.effects(t, inbox.EffectsConfig{Consumer: h.consumer + "-other"})
	if _, err := other.Park(h.ctx, delivery("a"), errors.New("x")); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for range 10 {
		page := h.listDead(t, fx, inbox.EffectDeadFilter{AfterKey: after, Limit: 2})
		if len(page) == 0 {
			break
		}
		got = append(got, deadKeys(page)...)
		after = page[len(page)-1].Delivery.Key
	}
	if want := []string{"a", "b", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Errorf("pages = %q, want %q", got, want)
	}
	if keys := deadKeys(h.listDead(t, fx, inbox.EffectDeadFilter{Key: "c"})); !slices.Equal(keys, []string{"c"}) {
		t.Errorf("ListDead(Key c) = %q", keys)
	}
	if keys := deadKeys(h.listDead(t, fx, inbox.EffectDeadFilter{Key: "zz"})); len(keys) != 0 {
		t.Errorf("ListDead(Key zz) = %q", keys)
	}
	if _, err := fx.ListDead(h.ctx, inbox.EffectDeadFilter{Limit: 1001}); err == nil {
		t.Error("ListDead with Limit 1001 succeeded")
	}
}

func testPark(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{})
	d := delivery("k")
	if res, err := fx.Park(h.ctx, d, errors.New("cannot decode")); res != inbox.Parked || err != nil {
		t.Fatalf("Park = %v, %v", res, err)
	}
	if res, err := fx.Park(h.ctx, d, errors.New("again")); res != inbox.Duplicate || err != nil {
		t.Errorf("Park of a parked key = %v, %v; want Duplicate", res, err)
	}
	res, err := h.run(t, fx, delivery("done"), new(counter).effect("r", nil))
	wantResult(t, "Run", res, err, inbox.Processed)
	if res, err := fx.Park(h.ctx, delivery("done"), errors.New("late")); res != inbox.Duplicate || err != nil {
		t.Errorf("Park of a completed key = %v, %v; want Duplicate", res, err)
	}
	if _, err := fx.Park(h.ctx, d, nil); err == nil {
		t.Error("Park without a cause succeeded")
	}
}

// Keys are compared byte for byte and scoped by consumer.
func testByteExactKeys(t *testing.T, h *harness) {
	fx := h.effects(t, inbox.EffectsConfig{})
	var down counter
	keys := []string{"Order-1", "order-1", "order-1 ", "order-1/ü", "a:b", "a}b{c"}
	for _, k := range keys {
		res, err := h.run(t, fx, delivery(k), down.effect(k, nil))
		wantResult(t, "Run "+k, res, err, inbox.Processed)
	}
	other := h.effects(t, inbox.EffectsConfig{Consumer: h.consumer + ":x"})
	res, err := h.run(t, other, delivery("order-1"), down.effect("other", nil))
	wantResult(t, "Run of another consumer", res, err, inbox.Processed)
	for _, k := range keys {
		if dup := h.begin(t, fx, delivery(k)); string(dup.Result) != k {
			t.Errorf("key %q: saved result %q", k, dup.Result)
		}
	}
}

func testCheck(t *testing.T, h *harness) {
	if err := h.effects(t, inbox.EffectsConfig{}).Check(h.ctx); err != nil {
		t.Errorf("Check: %v", err)
	}
}
