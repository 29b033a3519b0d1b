package rocketmq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
)

// outcomes collects what Config.OnOutcome reports, in the order it is called.
type outcomes struct {
	mu   sync.Mutex
	list []rocketmq.Outcome
}

func (o *outcomes) add(x rocketmq.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = append(o.list, x)
}

func (o *outcomes) all() []rocketmq.Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]rocketmq.Outcome(nil), o.list...)
}

// of returns the outcomes of the messages that carried messageKey.
func (o *outcomes) of(messageKey string) []rocketmq.Outcome {
	var out []rocketmq.Outcome
	for _, x := range o.all() {
		if x.Message.MessageKey == messageKey {
			out = append(out, x)
		}
	}
	return out
}

func describe(x rocketmq.Outcome) string {
	return fmt.Sprintf("{key %q inbox key %q result %s err %v acked %t unusable %t attempt %d}", x.Message.MessageKey,
		x.Message.Key, x.Result, x.Err, x.Acked, x.Unusable, x.Message.Attempt)
}

// TestInterceptorLostAck: an Interceptor that calls next and then returns an error is a lost ACK. The message
// was committed (Processed) but is not acknowledged, so the broker delivers it again, and the redelivery finds
// the key recorded (Duplicate) and is acknowledged: one effect, the handler ran once.
func TestInterceptorLostAck(t *testing.T) {
	t.Parallel()
	e := newBed(t, target(t, fastTarget), 1, inbox.Config{})
	errLost := errors.New("injected lost ACK")
	var seen outcomes
	var runs attempts
	e.consumer(func(c *rocketmq.Config) {
		c.Interceptor = func(ctx context.Context, m *rocketmq.Message, next func(context.Context) (inbox.Result, error)) (inbox.Result, error) {
			res, err := next(ctx)
			if err == nil && res == inbox.Processed {
				return res, errLost // committed, but the broker is told otherwise
			}
			return res, err
		}
		c.OnOutcome = seen.add
	}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
		runs.inc(m.Key)
		return effect(ctx, tx, m, 0)
	})
	e.publish(1, "lost-ack", "", "p")
	waitFor(t, 60*time.Second, "the redelivery after the lost ACK", func() bool { return len(seen.of("lost-ack")) >= 2 })
	got := seen.of("lost-ack")
	if first := got[0]; first.Result != inbox.Processed || first.Acked || !errors.Is(first.Err, errLost) ||
		first.Unusable || first.Duration <= 0 {
		t.Errorf("first delivery: %s, duration %s; want processed, not acknowledged, the injected error", describe(first),
			first.Duration)
	}
	if second := got[1]; second.Result != inbox.Duplicate || !second.Acked || second.Err != nil ||
		second.Message.Attempt < 1 {
		t.Errorf("second delivery: %s; want a duplicate redelivered by the broker (attempt ≥ 1), acknowledged", describe(second))
	}
	if n := runs.get("lost-ack"); n != 1 {
		t.Errorf("handler ran %d times, want once", n)
	}
	e.exactlyOnce([]string{"lost-ack"})
}

// TestInboxKeyMapsMessagesToOneEffect: InboxKey maps two messages with different keys to one inbox key (one
// payment per order, whichever message asked for it): one effect per order, the other message a Duplicate;
// MessageKey keeps each message's own key.
func TestInboxKeyMapsMessagesToOneEffect(t *testing.T) {
	t.Parallel()
	e := newBed(t, target(t, fastTarget), 2, inbox.Config{})
	var seen outcomes
	e.consumer(func(c *rocketmq.Config) {
		c.InboxKey = func(m *rocketmq.Message) string {
			order, _, _ := strings.Cut(m.MessageKey, "/")
			return inbox.Key(order, "payment")
		}
		c.OnOutcome = seen.add
	}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error { return effect(ctx, tx, m, 0) })
	orders := []string{"o1", "o2", "o3"}
	var want []string
	for i, o := range orders {
		// The same payload: the inbox's fingerprint is per inbox key, and these are one request twice.
		e.publish(int64(2*i), o+"/created", "", "order "+o)
		e.publish(int64(2*i+1), o+"/created-again", "", "order "+o)
		want = append(want, inbox.Key(o, "payment"))
	}
	waitFor(t, 60*time.Second, "both messages of every order", func() bool { return len(seen.all()) >= 2*len(orders) })
	e.exactlyOnce(want)
	for _, o := range orders {
		results := map[inbox.Result]int{}
		for _, k := range []string{o + "/created", o + "/created-again"} {
			got := seen.of(k)
			if len(got) != 1 {
				t.Fatalf("%s: %d outcomes, want 1", k, len(got))
			}
			x := got[0]
			if !x.Acked || x.Err != nil || x.Unusable || x.Message.Key != inbox.Key(o, "payment") {
				t.Errorf("%s: %s; want acknowledged under inbox key %s", k, describe(x), inbox.Key(o, "payment"))
			}
			results[x.Result]++
		}
		if results[inbox.Processed] != 1 || results[inbox.Duplicate] != 1 {
			t.Errorf("order %s: results %v, want one processed and one duplicate", o, results)
		}
	}
}

// TestOnOutcomeReportsUnusable: a message without a business key (a plain producer, no KEYS, no TXBOX_KEY) is
// parked and reported as Unusable, acknowledged; it never reaches InboxKey or Interceptor, which see only the
// keyed message beside it.
func TestOnOutcomeReportsUnusable(t *testing.T) {
	t.Parallel()
	e := newBed(t, target(t, fastTarget), 1, inbox.Config{})
	var seen outcomes
	var mapped, intercepted attempts
	e.consumer(func(c *rocketmq.Config) {
		c.InboxKey = func(m *rocketmq.Message) string {
			mapped.inc(m.MessageKey)
			return m.MessageKey
		}
		c.Interceptor = func(ctx context.Context, m *rocketmq.Message, next func(context.Context) (inbox.Result, error)) (inbox.Result, error) {
			intercepted.inc(m.MessageKey)
			return next(ctx)
		}
		c.OnOutcome = seen.add
	}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error { return effect(ctx, tx, m, 0) })
	msgID := e.sendRaw(primitive.NewMessage(e.topic, []byte("no key here")))
	e.publish(1, "keyed", "", "k")
	waitFor(t, 30*time.Second, "both outcomes", func() bool { return len(seen.all()) >= 2 })

	var unusable []rocketmq.Outcome
	for _, x := range seen.all() {
		if x.Unusable {
			unusable = append(unusable, x)
		}
	}
	if len(unusable) != 1 {
		t.Fatalf("%d unusable outcomes, want 1", len(unusable))
	}
	if x := unusable[0]; x.Message.MessageID != msgID || x.Message.MessageKey != "" || !x.Acked ||
		x.Result != inbox.Parked || x.Err != nil {
		t.Errorf("keyless message: %s, id %s; want message %s parked and acknowledged", describe(x), x.Message.MessageID, msgID)
	}
	if got := seen.of("keyed"); len(got) != 1 || got[0].Unusable || got[0].Result != inbox.Processed || !got[0].Acked {
		t.Errorf("keyed message: %d outcomes %v, want one processed and acknowledged", len(got), got)
	}
	if mapped.get("") != 0 || intercepted.get("") != 0 {
		t.Errorf("the keyless message reached InboxKey %d and Interceptor %d times, want never",
			mapped.get(""), intercepted.get(""))
	}
	if mapped.get("keyed") != 1 || intercepted.get("keyed") != 1 {
		t.Errorf("the keyed message reached InboxKey %d and Interceptor %d times, want once each",
			mapped.get("keyed"), intercepted.get("keyed"))
	}
	dead, err := e.ib.ListDead(context.Background(), inbox.DeadFilter{})
	if err != nil || len(dead) != 1 || dead[0].Delivery.MessageID != msgID {
		t.Fatalf("dead letters %+v (%v), want the keyless message", dead, err)
	}
}

// TestInterceptorWithoutNext: an Interceptor that does not call next decides alone: the handler never runs,
// the inbox records nothing, and its Processed acknowledges the message.
func TestInterceptorWithoutNext(t *testing.T) {
	t.Parallel()
	e := newBed(t, target(t, fastTarget), 1, inbox.Config{})
	var seen outcomes
	var ran atomic.Int32
	e.consumer(func(c *rocketmq.Config) {
		c.Interceptor = func(context.Context, *rocketmq.Message, func(context.Context) (inbox.Result, error)) (inbox.Result, error) {
			return inbox.Processed, nil
		}
		c.OnOutcome = seen.add
	}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
		ran.Add(1)
		return effect(ctx, tx, m, 0)
	})
	want := keys("skip", 3)
	for i, k := range want {
		e.publish(int64(i), k, "", k)
	}
	waitFor(t, 30*time.Second, "every outcome", func() bool { return len(seen.all()) >= len(want) })
	for _, k := range want {
		got := seen.of(k)
		if len(got) != 1 || got[0].Result != inbox.Processed || !got[0].Acked || got[0].Err != nil || got[0].Unusable {
			t.Errorf("%s: outcomes %v, want one processed and acknowledged", k, got)
		}
	}
	if n := ran.Load(); n != 0 {
		t.Errorf("the handler ran %d times, want never", n)
	}
	var recorded int
	if err := e.db.Get(&recorded, "SELECT COUNT(*) FROM txbox_inbox"); err != nil {
		t.Fatal(err)
	}
	if recorded != 0 || e.countEffects() != 0 {
		t.Errorf("%d inbox rows and %d effects, want none", recorded, e.countEffects())
	}
}

// TestInterceptorZeroResultIsNoAck: a nil error with a result that is not Processed, Duplicate or Parked (here
// the zero Result, Failed) does not acknowledge: rocketmq-client-go's ConsumeSuccess is the zero value, and the
// consumer must not fall into it. The message comes back.
func TestInterceptorZeroResultIsNoAck(t *testing.T) {
	t.Parallel()
	e := newBed(t, target(t, fastTarget), 1, inbox.Config{})
	var seen outcomes
	var calls atomic.Int32
	e.consumer(func(c *rocketmq.Config) {
		c.Interceptor = func(ctx context.Context, m *rocketmq.Message, next func(context.Context) (inbox.Result, error)) (inbox.Result, error) {
			if calls.Add(1) == 1 {
				var zero inbox.Result
				return zero, nil
			}
			return next(ctx)
		}
		c.OnOutcome = seen.add
	}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error { return effect(ctx, tx, m, 0) })
	e.publish(1, "zero", "", "z")
	waitFor(t, 60*time.Second, "the redelivery", func() bool { return len(seen.of("zero")) >= 2 })
	got := seen.of("zero")
	if got[0].Acked || got[0].Err == nil {
		t.Errorf("first delivery: %s; want not acknowledged, with an error", describe(got[0]))
	}
	if got[1].Result != inbox.Processed || !got[1].Acked || got[1].Message.Attempt < 1 {
		t.Errorf("second delivery: %s; want the redelivery processed", describe(got[1]))
	}
	e.exactlyOnce([]string{"zero"})
}
