package rocketmq

import (
	"context"
	"fmt"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/inbox"
)

// EffectHandler performs a message's effect outside the database for claim c (see inbox.EffectFunc): pass c.Key
// (the key Effects records, Message.Key) to the downstream system as its idempotency key, and return a small
// result to save. ctx ends when the claim's lease does, or early when Shutdown gives up waiting.
type EffectHandler func(ctx context.Context, m *Message, c *inbox.Claim) ([]byte, error)

// NewEffects is New for effects outside the database: every message goes through fx.Run with h, under the
// inbox key Config.InboxKey maps it to, instead of through Inbox.Process. Outcomes map as for New — Processed,
// Duplicate (the effect completed before; h does not run) and Parked acknowledge; errors deliver the message
// again; unusable messages (no key, ErrInvalidDelivery, ErrFingerprintMismatch) are parked in fx's records under
// the stand-in key — and one more:
//
//	inbox.ErrBusy (another run holds the key)  → ConsumeRetryLater with the delay level that covers the time
//	                                             left on its lease, or in orderly mode the queue suspended for it
//
// A busy delivery is not a failure of the message: it is not counted by fx, and it is reported to OnOutcome
// with an error matching inbox.ErrBusy. Each such redelivery does count against the broker's
// MaxReconsumeTimes, like any ConsumeRetryLater; RocketMQ's 16 retries span hours, far more than a lease.
//
// Config is validated as for New with fx's Lease in the place of the inbox's HandlerTimeout (ConsumeTimeout must
// exceed it by HandlerMargin, so that the client does not redeliver a message whose effect still runs) and fx's
// MaxAttempts in the place of the inbox's.
func NewEffects(fx *inbox.Effects, cfg Config, h EffectHandler) (*Consumer, error) {
	if fx == nil {
		return nil, fmt.Errorf("%w: the *inbox.Effects is nil", ErrInvalidConfig)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: the EffectHandler is nil", ErrInvalidConfig)
	}
	if cfg.BatchSize > 1 {
		return nil, fmt.Errorf("%w: BatchSize above 1 is for New (inbox.ProcessBatch), not NewEffects", ErrInvalidConfig)
	}
	fc := fx.Config()
	cfg, err := cfg.withDefaults(inbox.Config{HandlerTimeout: fc.Lease, MaxAttempts: fc.MaxAttempts})
	if err != nil {
		return nil, fmt.Errorf("%w (for NewEffects the inbox's HandlerTimeout is the Effects' Lease, its MaxAttempts "+
			"the Effects' MaxAttempts)", err)
	}
	run := func(ctx context.Context, msg *Message) (inbox.Result, error) {
		return fx.Run(ctx, msg.Delivery, func(ctx context.Context, c *inbox.Claim) ([]byte, error) { return h(ctx, msg, c) })
	}
	return start(cfg, run, nil, fx.Park)
}

// delayLevels are RocketMQ's default message delay levels (messageDelayLevel), level 1 first.
var delayLevels = []time.Duration{time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
	2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute, 6 * time.Minute, 7 * time.Minute,
	8 * time.Minute, 9 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour}

// delayLevelFor is the lowest default delay level at least d long (the last one for longer waits). A broker
// configured with other levels applies its own level of that number.
func delayLevelFor(d time.Duration) int {
	for i, l := range delayLevels {
		if l >= d {
			return i + 1
		}
	}
	return len(delayLevels)
}

// retryBusy sends a busy message back to be delivered once the other run's lease has passed: concurrently with
// the delay level covering it, orderly with the queue suspended for it (at least 10ms, at most a minute: the
// queue's other messages wait too).
func (c *Consumer) retryBusy(ctx context.Context, left time.Duration) consumer.ConsumeResult {
	if c.cfg.Orderly {
		return c.retry(ctx, min(max(left, 10*time.Millisecond), time.Minute))
	}
	if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok {
		cc.DelayLevelWhenNextConsume = delayLevelFor(left)
	}
	return consumer.ConsumeRetryLater
}
