package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
)

// ConsumerHooks is what the demo adds to an inbox/rocketmq consumer through its hooks: the consumer side of
// Faults (lost ACKs, slow handlers), the counts in Stats, and the -without-inbox mode. The consumer itself is
// txbox's, unchanged; a service without a demo passes its Config and Handler to rocketmq.New as they are.
type ConsumerHooks struct {
	Faults Faults
	// HandlerTimeout is the inbox's handler deadline: the injected slow handler outlives it, and WithoutInbox
	// gives its transactions the same deadline. Required.
	HandlerTimeout time.Duration
	Stats          *Stats // required
	// WithoutInbox, when set, applies every delivery in a plain transaction on this database instead of
	// through the inbox, duplicates included: what a consumer without txbox does. The demo's -without-inbox
	// shows what that costs. Never in a real service.
	WithoutInbox *sqlx.DB
}

// Apply returns cfg with its Interceptor and OnOutcome set (any set before are replaced) and h with the
// slow-handler fault around it; pass both to rocketmq.New.
//
//   - The Interceptor runs the message through the inbox (or, WithoutInbox, through a plain transaction) and
//     then, for a message Faults chooses for LostAck, reports its first commit to the broker as a failure: the
//     broker delivers it again and the inbox finds it recorded.
//   - The handler does h's writes and then, on the first delivery of a message chosen for Slow, waits past
//     HandlerTimeout, so that the inbox rolls the writes back and the broker redelivers the message.
//   - OnOutcome counts every delivery into Stats, attributing each duplicate to its cause.
func (hk ConsumerHooks) Apply(cfg rocketmq.Config, h rocketmq.Handler) (rocketmq.Config, rocketmq.Handler, error) {
	switch {
	case hk.Stats == nil:
		return cfg, nil, errors.New("bus: ConsumerHooks needs Stats")
	case hk.HandlerTimeout <= 0:
		return cfg, nil, errors.New("bus: ConsumerHooks needs HandlerTimeout")
	case h == nil:
		return cfg, nil, errors.New("bus: ConsumerHooks.Apply needs a handler")
	}
	if err := hk.Faults.Validate(); err != nil {
		return cfg, nil, err
	}
	p := &probe{ConsumerHooks: hk}
	p.h = p.slow(h)
	cfg.Interceptor = p.intercept
	cfg.OnOutcome = p.count
	return cfg, p.h, nil
}

// probe carries one consumer's fault state between its hooks.
type probe struct {
	ConsumerHooks
	h        rocketmq.Handler // with the slow fault
	injected sync.Map         // fault + "\x00" + message key → struct{}: each message gets its fault once
}

// The errors the Interceptor returns for injected faults, so that OnOutcome can tell them from real failures.
var (
	errLostAck = errors.New("injected lost ACK: committed, reported to the broker as failed")
	errSlow    = errors.New("injected slow handler rolled back")
)

// attempt is one delivery's record, carried in ctx from the Interceptor to the handler.
type attempt struct{ slow bool }

type attemptKey struct{}

// slow wraps h with the slow-handler fault.
func (p *probe) slow(h rocketmq.Handler) rocketmq.Handler {
	return func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
		if err := h(ctx, tx, m); err != nil {
			return err
		}
		if p.Faults.For(m.MessageKey) != Slow || !p.once(Slow, m.MessageKey) {
			return nil
		}
		if a, ok := ctx.Value(attemptKey{}).(*attempt); ok {
			a.slow = true
		}
		// The writes are done but not committed; outlive the deadline so the inbox rolls them back. The timer
		// only guards against an inbox that does not cancel ctx: the attempt must fail either way.
		t := time.NewTimer(p.HandlerTimeout + time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return fmt.Errorf("injected slow handler: %w", ctx.Err())
		case <-t.C:
			return errors.New("injected slow handler: the inbox's deadline did not cancel it")
		}
	}
}

// intercept is the consumer's Interceptor: the inbox (next) or a plain transaction, then the lost-ACK fault.
func (p *probe) intercept(ctx context.Context, m *rocketmq.Message, next func(context.Context) (inbox.Result, error)) (inbox.Result, error) {
	a := &attempt{}
	ctx = context.WithValue(ctx, attemptKey{}, a)
	var res inbox.Result
	var err error
	if p.WithoutInbox != nil {
		res, err = p.plain(ctx, m)
	} else {
		res, err = next(ctx)
	}
	switch {
	case err != nil && a.slow:
		return res, fmt.Errorf("%w: %w", errSlow, err)
	case err == nil && res == inbox.Processed && p.Faults.For(m.MessageKey) == LostAck && p.once(LostAck, m.MessageKey):
		// Committed, but the broker is told otherwise: to the broker this is a lost ACK, and it delivers the
		// message again.
		return res, errLostAck
	}
	return res, err
}

// plain runs the handler in a transaction of its own, with the deadline the inbox would set: every delivery
// is applied, duplicates included. It does not call the inbox at all.
func (p *probe) plain(ctx context.Context, m *rocketmq.Message) (inbox.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, p.HandlerTimeout)
	defer cancel()
	tx, err := p.WithoutInbox.BeginTxx(ctx, nil)
	if err != nil {
		return inbox.Failed, err
	}
	if err := p.h(ctx, tx, m); err != nil {
		_ = tx.Rollback()
		return inbox.Failed, err
	}
	if err := tx.Commit(); err != nil {
		return inbox.Failed, err
	}
	return inbox.Processed, nil
}

// count is the consumer's OnOutcome.
func (p *probe) count(o rocketmq.Outcome) {
	st := p.Stats
	st.delivered.Add(1)
	key := o.Message.MessageKey
	switch {
	case o.Unusable && o.Acked:
		st.parked.Add(1) // no usable key: parked under a stand-in key by the consumer
	case errors.Is(o.Err, errLostAck):
		st.processed.Add(1)
		st.lostAcks.Add(1)
	case errors.Is(o.Err, errSlow):
		st.timedOut.Add(1)
	case errors.Is(o.Err, ErrLostResponse):
		st.lostResponses.Add(1)
	case o.Err != nil || !o.Acked:
		st.failed.Add(1)
	case o.Result == inbox.Parked:
		// Failed the inbox's MaxAttempts times: parked in its dead-letter table for an operator.
		st.parked.Add(1)
	case o.Result == inbox.Duplicate:
		switch f := p.Faults.For(key); {
		case f == LostAck && p.injectedBefore(LostAck, key):
			st.dupLost.Add(1)
		case f == Resend:
			st.dupResent.Add(1)
		default:
			st.dupOther.Add(1)
		}
	default:
		st.processed.Add(1)
	}
}

// once reports whether this is the first time fault is injected for key.
func (p *probe) once(f Fault, key string) bool {
	_, loaded := p.injected.LoadOrStore(f.String()+"\x00"+key, struct{}{})
	return !loaded
}

func (p *probe) injectedBefore(f Fault, key string) bool {
	_, ok := p.injected.Load(f.String() + "\x00" + key)
	return ok
}
