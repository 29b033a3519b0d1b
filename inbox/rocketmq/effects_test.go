package rocketmq_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/internal/rmqtest"
)

// gatewayCalls is a downstream system in the test: it counts calls per idempotency key.
type gatewayCalls = attempts

// effectsConsumer starts a NewEffects consumer on the bed's topic and group, with Effects on the bed's database
// (SQLEffectStore) for the group; mod adjusts the config. It is shut down when the test ends.
func (e *bed) effectsConsumer(fcfg inbox.EffectsConfig, mod func(*rocketmq.Config), h rocketmq.EffectHandler) (*rocketmq.Consumer, *inbox.Effects) {
	e.t.Helper()
	st, err := inbox.NewSQLEffectStore(e.db.DB, inbox.SQLEffectStoreConfig{Dialect: e.db.Dialect})
	if err != nil {
		e.t.Fatal(err)
	}
	fcfg.Consumer = e.group
	fx, err := inbox.NewEffects(st, fcfg)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := rocketmq.Config{NameServers: e.b.NameServers(), Group: e.group, Topic: e.topic, FromFirstOffset: true}
	if mod != nil {
		mod(&cfg)
	}
	c, err := rocketmq.NewEffects(fx, cfg, h)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			e.t.Errorf("shutdown: %v", err)
		}
	})
	return c, fx
}

// TestEffectsConsumerRunsEachKeyOnce: messages published twice, and messages whose effect fails on its first
// run, reach the downstream system through NewEffects: every key's effect completes once, duplicates are
// acknowledged without running it, and failed runs come back from the broker and complete.
func TestEffectsConsumerRunsEachKeyOnce(t *testing.T) {
	t.Parallel()
	e := newBed(t, target(t, fastTarget), 2, inbox.Config{})
	var gw gatewayCalls
	var seen outcomes
	_, fx := e.effectsConsumer(inbox.EffectsConfig{}, func(c *rocketmq.Config) { c.OnOutcome = seen.add },
		func(ctx context.Context, m *rocketmq.Message, c *inbox.Claim) ([]byte, error) {
			if c.Key != m.Key {
				t.Errorf("claim key %q for message key %q", c.Key, m.Key)
			}
			if gw.inc(c.Key) == 1 && strings.HasPrefix(c.Key, "flaky") {
				return nil, errors.New("gateway timeout")
			}
			return []byte("charge " + c.Key), nil
		})
	dups, flaky := keys("dup", 10), keys("flaky", 5)
	for i, k := range append(dups, flaky...) {
		e.publish(int64(i), k, "", "payload "+k)
		if strings.HasPrefix(k, "dup") {
			e.publish(int64(i), k, "", "payload "+k) // the same message again
		}
	}
	acked := func(k string) (n, processed int) {
		for _, o := range seen.of(k) {
			if o.Acked {
				n++
			}
			if o.Result == inbox.Processed {
				processed++
			}
		}
		return n, processed
	}
	waitFor(t, 90*time.Second, "every message acknowledged", func() bool {
		for _, k := range append(dups, flaky...) {
			want := 1
			if strings.HasPrefix(k, "dup") {
				want = 2
			}
			if n, _ := acked(k); n < want {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	for _, k := range append(dups, flaky...) {
		c, err := fx.Begin(ctx, inbox.Delivery{Key: k, Payload: []byte("payload " + k)})
		if err != nil || c.Status != inbox.EffectCompleted || string(c.Result) != "charge "+k {
			t.Errorf("key %s: claim %+v, %v; want completed with its charge", k, c, err)
		}
		if _, processed := acked(k); processed != 1 {
			t.Errorf("key %s processed %d times, want 1", k, processed)
		}
		// A copy delivered while the other ran was busy: not acknowledged, and delivered again.
		for _, o := range seen.of(k) {
			if !o.Acked && !errors.Is(o.Err, inbox.ErrBusy) && !strings.HasPrefix(k, "flaky") {
				t.Errorf("key %s: outcome %s", k, describe(o))
			}
		}
	}
	for _, k := range dups {
		if n := gw.get(k); n != 1 {
			t.Errorf("key %s: %d gateway calls, want 1", k, n)
		}
	}
	for _, k := range flaky {
		if n := gw.get(k); n != 2 {
			t.Errorf("key %s: %d gateway calls, want 2 (a failed run, then the redelivery)", k, n)
		}
	}
}

// TestEffectsConsumerBusyIsRetriedLater: a message whose key another run holds is not acknowledged (ErrBusy),
// and not counted as a failure; the broker delivers it again, and once the other run has completed it is a
// duplicate: the handler never ran.
func TestEffectsConsumerBusyIsRetriedLater(t *testing.T) {
	t.Parallel()
	e := newBed(t, target(t, fastTarget), 1, inbox.Config{})
	var seen outcomes
	ran := make(chan string, 10)
	_, fx := e.effectsConsumer(inbox.EffectsConfig{}, func(c *rocketmq.Config) { c.OnOutcome = seen.add },
		func(ctx context.Context, m *rocketmq.Message, c *inbox.Claim) ([]byte, error) {
			ran <- c.Key
			return nil, nil
		})
	ctx := context.Background()
	d := inbox.Delivery{Key: "held", Payload: []byte("p")}
	other, err := fx.Begin(ctx, d) // another consumer's run, holding the key
	if err != nil || other.Status != inbox.EffectAcquired {
		t.Fatalf("Begin = %+v, %v", other, err)
	}
	e.publish(1, "held", "", "p")
	waitFor(t, 60*time.Second, "the busy delivery", func() bool { return len(seen.of("held")) >= 1 })
	if o := seen.of("held")[0]; o.Acked || !errors.Is(o.Err, inbox.ErrBusy) || o.Result != inbox.Failed {
		t.Fatalf("first outcome %s, want not acknowledged with ErrBusy", describe(o))
	}
	if err := other.Complete(ctx, []byte("done elsewhere")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the redelivery", func() bool {
		o := seen.of("held")
		return len(o) > 0 && o[len(o)-1].Acked
	})
	if o := seen.of("held"); o[len(o)-1].Result != inbox.Duplicate {
		t.Errorf("last outcome %s, want an acknowledged duplicate", describe(o[len(o)-1]))
	}
	select {
	case k := <-ran:
		t.Errorf("the handler ran for %q; the other run completed the key", k)
	default:
	}
	c, err := fx.Begin(ctx, d)
	if err != nil || c.Attempt != 0 || c.Status != inbox.EffectCompleted {
		t.Errorf("Begin = %+v, %v; want completed", c, err)
	}
}

// TestEffectsConsumerParksUnusable: a message without a business key is parked in the effect records under the
// stand-in key and acknowledged; a keyed message behind it runs.
func TestEffectsConsumerParksUnusable(t *testing.T) {
	t.Parallel()
	e := newBed(t, target(t, "mariadb"), 1, inbox.Config{})
	var gw gatewayCalls
	_, fx := e.effectsConsumer(inbox.EffectsConfig{}, nil,
		func(ctx context.Context, m *rocketmq.Message, c *inbox.Claim) ([]byte, error) {
			gw.inc(c.Key)
			return nil, nil
		})
	msg := primitive.NewMessage(e.topic, []byte("no key here"))
	msgID := e.sendRaw(msg)
	e.publish(2, "keyed", "", "after")
	waitFor(t, 60*time.Second, "the keyed message", func() bool { return gw.get("keyed") == 1 })
	var dead []inbox.EffectDeadLetter
	waitFor(t, 30*time.Second, "the parked message", func() bool {
		var err error
		dead, err = fx.ListDead(context.Background(), inbox.EffectDeadFilter{})
		return err == nil && len(dead) == 1
	})
	if d := dead[0]; d.Delivery.Key != inbox.Key("txbox-unusable", e.topic, msgID) || string(d.Delivery.Payload) != "no key here" ||
		!strings.Contains(d.LastError, "no business key") {
		t.Fatalf("parked %+v", d)
	}
}

func TestEffectsConsumerConfig(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	e := newBed(t, target(t, fastTarget), 1, inbox.Config{})
	st, err := inbox.NewSQLEffectStore(e.db.DB, inbox.SQLEffectStoreConfig{Dialect: e.db.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	fx, err := inbox.NewEffects(st, inbox.EffectsConfig{Consumer: "c", Lease: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h := func(context.Context, *rocketmq.Message, *inbox.Claim) ([]byte, error) { return nil, nil }
	cfg := rocketmq.Config{NameServers: b.NameServers(), Group: e.group, Topic: e.topic}
	if _, err := rocketmq.NewEffects(nil, cfg, h); !errors.Is(err, rocketmq.ErrInvalidConfig) {
		t.Errorf("nil Effects: %v", err)
	}
	if _, err := rocketmq.NewEffects(fx, cfg, nil); !errors.Is(err, rocketmq.ErrInvalidConfig) {
		t.Errorf("nil handler: %v", err)
	}
	short := cfg
	short.ConsumeTimeout = 10 * time.Minute
	if _, err := rocketmq.NewEffects(fx, short, h); !errors.Is(err, rocketmq.ErrInvalidConfig) || !strings.Contains(err.Error(), "Lease") {
		t.Errorf("ConsumeTimeout not above the Lease: %v, want ErrInvalidConfig naming the Lease", err)
	}
	few := cfg
	few.MaxReconsumeTimes = 3
	if _, err := rocketmq.NewEffects(fx, few, h); !errors.Is(err, rocketmq.ErrInvalidConfig) || !strings.Contains(err.Error(), "MaxAttempts") {
		t.Errorf("MaxReconsumeTimes below MaxAttempts: %v, want ErrInvalidConfig", err)
	}
}
