package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/rmqclient"
	"github.com/txbox/txbox/internal/rmqlog"
	"github.com/txbox/txbox/rmqwire"
)

// Message is a delivery as the Handler sees it: the inbox.Delivery that Process records (inbox key, payload,
// user headers, topic, message id, attempt) plus the business key the message carries and RocketMQ's metadata.
type Message struct {
	inbox.Delivery
	// MessageKey is the business key the message carries (the Config.KeyProperty property, or its first KEYS
	// entry); "" for a message without one. Key (from inbox.Delivery) is what the inbox records: the same unless
	// Config.InboxKey maps it.
	MessageKey  string
	Tag         string
	ShardingKey string
	// OutboxID is the outbox row id relay/rocketmq wrote (TXBOX_OUTBOX_ID); 0 for other producers.
	OutboxID    int64
	Queue       int
	QueueOffset int64
	BornAt      time.Time
	StoredAt    time.Time
}

// Outcome is what became of one delivered message, as Config.OnOutcome sees it.
type Outcome struct {
	Message *Message
	// Result is what the inbox did (Process's result, as Config.Interceptor returned it). For an Unusable
	// message: Parked when it was parked, Failed otherwise.
	Result inbox.Result
	// Err is why the message was not acknowledged (the error Process or Config.Interceptor returned); nil when
	// acknowledged.
	Err error
	// Acked tells whether the consumer acknowledged the message (ConsumeSuccess): it is done for this group.
	// Otherwise the message is delivered again, or, when even parking it failed, sent to %DLQ%<group>.
	Acked bool
	// Unusable reports a message that could not be processed under its own key (no business key, a key or
	// headers the inbox rejects, a fingerprint mismatch): the Handler did not run and the message was parked
	// under a stand-in key (see the package documentation).
	Unusable bool
	// Duration is the time from the start of the message's handling until its fate was decided: inbox,
	// Handler and Interceptor, or parking.
	Duration time.Duration
}

// Handler does a message's work in tx, the inbox transaction that records its key; see inbox.Handler. ctx ends
// at the inbox's HandlerTimeout, or early when Shutdown gives up waiting.
type Handler func(ctx context.Context, tx *sqlx.Tx, m *Message) error

// Consumer feeds a RocketMQ push consumer's messages through Inbox.Process (New), or through Effects.Run
// (NewEffects).
type Consumer struct {
	cfg Config
	// run handles one keyed message (Process or Effects.Run with the handler); parkIn parks an unusable one.
	run func(ctx context.Context, msg *Message) (inbox.Result, error)
	// runBatch, for BatchSize above 1, handles the keyed messages of one callback (ProcessBatch).
	runBatch func(ctx context.Context, msgs []*Message) []inbox.BatchResult
	parkIn   func(ctx context.Context, d inbox.Delivery, cause error) (inbox.Result, error)
	pc       rmq.PushConsumer
	log      *slog.Logger

	// base is the parent of every handler's ctx; Shutdown cancels it when its own ctx ends first.
	base       context.Context
	cancelBase context.CancelFunc

	mu       sync.Mutex
	closing  bool
	inflight sync.WaitGroup
	// released is closed once the client is shut down: callbacks that arrived during shutdown wait for it, so
	// that their messages are neither handled nor acknowledged (their offsets stay uncommitted).
	released chan struct{}
	stopOnce sync.Once
	stopErr  error
	// releaseTLS unregisters the client's TLS setting (rmqclient.AcquireTLS) once it is shut down.
	releaseTLS func()
}

// New validates cfg against the inbox's configuration, creates a push consumer subscribed to cfg.Topic and starts
// it. Every message then goes through ib.Process with h. The topic must exist with a route (ErrStart otherwise).
func New(ib *inbox.Inbox, cfg Config, h Handler) (*Consumer, error) {
	return newConsumer(ib, cfg, h)
}

func newConsumer(ib *inbox.Inbox, cfg Config, h Handler, extra ...consumer.Option) (*Consumer, error) {
	if ib == nil {
		return nil, fmt.Errorf("%w: the *inbox.Inbox is nil", ErrInvalidConfig)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: the Handler is nil", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults(ib.Config())
	if err != nil {
		return nil, err
	}
	run := func(ctx context.Context, msg *Message) (inbox.Result, error) {
		return ib.Process(ctx, msg.Delivery, func(ctx context.Context, tx *sqlx.Tx) error { return h(ctx, tx, msg) })
	}
	var runBatch func(ctx context.Context, msgs []*Message) []inbox.BatchResult
	if cfg.BatchSize > 1 {
		runBatch = func(ctx context.Context, msgs []*Message) []inbox.BatchResult {
			ds := make([]inbox.Delivery, len(msgs))
			byID := make(map[string]*Message, len(msgs)) // a broker message's id is unique to it
			for i, m := range msgs {
				ds[i] = m.Delivery
				byID[m.MessageID] = m
			}
			return ib.ProcessBatch(ctx, ds, func(ctx context.Context, tx *sqlx.Tx, d inbox.Delivery) error {
				return h(ctx, tx, byID[d.MessageID])
			})
		}
	}
	return start(cfg, run, runBatch, ib.Park, extra...)
}

// start creates the push consumer for cfg (defaults filled in), subscribes it with run and park and starts it.
func start(cfg Config, run func(context.Context, *Message) (inbox.Result, error),
	runBatch func(context.Context, []*Message) []inbox.BatchResult,
	park func(context.Context, inbox.Delivery, error) (inbox.Result, error), extra ...consumer.Option) (*Consumer, error) {
	writeTLS, releaseTLS, err := rmqclient.AcquireTLS(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS: %w", ErrInvalidConfig, err)
	}
	rmqlog.Install(cfg.Logger, cfg.ClientLogLevel.Level())
	opts := []consumer.Option{
		consumer.WithNameServer(cfg.NameServers),
		consumer.WithGroupName(cfg.Group),
		consumer.WithInstance(cfg.InstanceName),
		consumer.WithConsumeTimeout(cfg.ConsumeTimeout),
		consumer.WithConsumeGoroutineNums(cfg.Goroutines),
		// One message per callback unless BatchSize says otherwise: the callback's result applies to all of its
		// messages.
		consumer.WithConsumeMessageBatchMaxSize(cfg.BatchSize),
	}
	if cfg.Orderly {
		// The inbox's MaxAttempts bounds retries of a failing message; the client's own limit is kept out of the
		// way (it would send the message to %DLQ% mid-order) except for deadLetter's explicit use of it.
		opts = append(opts, consumer.WithConsumerOrder(true), consumer.WithMaxReconsumeTimes(orderlyNoLimit),
			consumer.WithSuspendCurrentQueueTimeMillis(cfg.SuspendTime))
	} else {
		opts = append(opts, consumer.WithMaxReconsumeTimes(int32(cfg.MaxReconsumeTimes)))
	}
	if cfg.FromFirstOffset {
		opts = append(opts, consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	}
	if cfg.Namespace != "" {
		opts = append(opts, consumer.WithNamespace(cfg.Namespace))
	}
	if writeTLS {
		// The switch is process-global: AcquireTLS made sure no running txbox client relies on its old value.
		opts = append(opts, consumer.WithTls(cfg.TLS))
	}
	if cfg.Credentials.AccessKey != "" {
		opts = append(opts, consumer.WithCredentials(primitive.Credentials{
			AccessKey: cfg.Credentials.AccessKey, SecretKey: cfg.Credentials.SecretKey,
			SecurityToken: cfg.Credentials.SecurityToken,
		}))
	}
	pc, err := rmq.NewPushConsumer(append(opts, extra...)...)
	if err != nil {
		releaseTLS()
		return nil, fmt.Errorf("inbox/rocketmq: create push consumer: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	c := &Consumer{
		cfg: cfg, run: run, runBatch: runBatch, parkIn: park, pc: pc, base: base, cancelBase: cancel, released: make(chan struct{}),
		releaseTLS: releaseTLS,
		log:        cfg.Logger.With("component", "txbox.inbox.rocketmq", "group", cfg.Group, "topic", cfg.Topic),
	}
	sel := consumer.MessageSelector{Type: consumer.TAG, Expression: cfg.Tags}
	if err := pc.Subscribe(cfg.Topic, sel, c.consume); err != nil {
		cancel()
		releaseTLS()
		return nil, fmt.Errorf("inbox/rocketmq: subscribe to %s: %w", cfg.Topic, err)
	}
	if err := pc.Start(); err != nil {
		cancel()
		_ = pc.Shutdown()
		releaseTLS()
		return nil, fmt.Errorf("%w: group %s, topic %s (create the topic before starting its consumers): %w",
			ErrStart, cfg.Group, cfg.Topic, err)
	}
	return c, nil
}

// orderlyNoLimit is the orderly client's reconsume limit: effectively none.
const orderlyNoLimit = math.MaxInt32 - 1

// Config returns the configuration in use, defaults filled in.
func (c *Consumer) Config() Config { return c.cfg }

// consume is the client's callback. Its result is always one of the explicit outcomes below; the zero
// ConsumeResult (ConsumeSuccess) is never returned by accident.
func (c *Consumer) consume(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	if !c.enter() {
		// Shutting down: hold the message until the client is shut down. Its process queue is dropped by then,
		// so the client discards this result and the offset stays before the message: the next consumer of
		// the group gets it. Nothing runs, nothing is acknowledged.
		<-c.released
		return c.retry(ctx, 0), nil
	}
	left := false
	defer func() {
		if !left {
			c.inflight.Done() // also when something below panics (the client recovers it)
		}
	}()
	res := consumer.ConsumeSuccess
	if c.runBatch != nil && len(msgs) > 1 {
		res = c.handleBatch(ctx, msgs)
		msgs = nil // every outcome decided
	}
	for _, m := range msgs {
		o, busy := c.handle(m)
		switch o {
		case outcomeDone:
			continue
		case outcomeRetry:
			res = c.retry(ctx, c.cfg.SuspendTime)
		case outcomeBusy:
			res = c.retryBusy(ctx, busy)
		case outcomeDeadLetter:
			res = c.deadLetter(ctx, m)
		}
		break
	}
	if res != consumer.ConsumeSuccess && c.isClosing() {
		// A handler cut short by Shutdown: hand the message to the group's next consumer the same way as one
		// that arrived during shutdown, rather than sending it back to the broker while the client shuts down.
		left = true
		c.inflight.Done()
		<-c.released
		return c.retry(ctx, 0), nil
	}
	return res, nil
}

func (c *Consumer) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

func (c *Consumer) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.inflight.Add(1)
	return true
}

// retry is the result that makes the client deliver the message again: concurrently, ConsumeRetryLater sends it
// back to the broker (%RETRY%<group>, after the broker's delay levels); orderly, the queue is suspended for
// suspend and the message retried in place (ConsumeRetryLater would skip it).
func (c *Consumer) retry(ctx context.Context, suspend time.Duration) consumer.ConsumeResult {
	if c.cfg.Orderly {
		if oc, ok := primitive.GetOrderlyCtx(ctx); ok {
			oc.SuspendCurrentQueueTimeMillis = int(suspend / time.Millisecond)
		}
		return consumer.SuspendCurrentQueueAMoment
	}
	return consumer.ConsumeRetryLater
}

// deadLetter hands a message the inbox cannot hold to the broker's own dead-letter queue, %DLQ%<group>: delay
// level -1 on the way back tells the broker so.
func (c *Consumer) deadLetter(ctx context.Context, m *primitive.MessageExt) consumer.ConsumeResult {
	if c.cfg.Orderly {
		// The orderly client sends a message back (with delay level -1) once its reconsume count passes the
		// limit; push it past.
		m.ReconsumeTimes = math.MaxInt32
		return c.retry(ctx, 10*time.Millisecond)
	}
	if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok {
		cc.DelayLevelWhenNextConsume = -1
	}
	return consumer.ConsumeRetryLater
}

type outcome int

const (
	outcomeRetry      outcome = iota // not done: deliver again
	outcomeDone                      // processed, duplicate or parked: acknowledge
	outcomeDeadLetter                // cannot be parked in the inbox: broker DLQ
	outcomeBusy                      // another run holds the key's effect (inbox.ErrBusy): deliver again later
)

// handle decides what becomes of m; for outcomeBusy it also returns how long the other run's lease still runs.
func (c *Consumer) handle(m *primitive.MessageExt) (outcome, time.Duration) {
	start := time.Now()
	msg, keyErr := c.message(m)
	if keyErr != nil {
		return c.unusable(msg, keyErr, start), 0
	}
	res, err := c.process(msg)
	var busy *inbox.BusyError
	switch {
	case err == nil && (res == inbox.Processed || res == inbox.Duplicate || res == inbox.Parked):
		if res != inbox.Parked {
			c.log.Debug("inbox/rocketmq: message done", "key", msg.Key, "result", res.String(), "msg_id", msg.MessageID)
		}
		c.report(Outcome{Message: msg, Result: res, Acked: true}, start)
		return outcomeDone, 0
	case errors.Is(err, inbox.ErrInvalidDelivery), errors.Is(err, inbox.ErrFingerprintMismatch):
		// Redelivery cannot fix these; park the message under a key of its own so it can be inspected.
		return c.unusable(msg, fmt.Errorf("%w: %w", ErrUnusable, err), start), 0
	case errors.As(err, &busy):
		// Another run holds the key's effect: not a failure of the message, so not logged as one.
		c.log.Debug("inbox/rocketmq: key busy; message will be delivered again", "key", msg.Key,
			"msg_id", msg.MessageID, "retry_after", busy.RetryAfter)
		c.report(Outcome{Message: msg, Result: res, Err: err}, start)
		return outcomeBusy, busy.RetryAfter
	case err == nil:
		// Never the zero ConsumeSuccess by accident: a result that is not one of the three is not an ACK.
		c.log.Error("inbox/rocketmq: unexpected inbox result; message will be delivered again", "key", msg.Key,
			"result", res.String(), "msg_id", msg.MessageID)
		err = fmt.Errorf("inbox/rocketmq: result %s without an error does not acknowledge a message", res)
	default:
		c.log.Warn("inbox/rocketmq: message failed; it will be delivered again", "key", msg.Key,
			"msg_id", msg.MessageID, "attempt", msg.Attempt, "error", err)
	}
	c.report(Outcome{Message: msg, Result: res, Err: err}, start)
	return outcomeRetry, 0
}

// handleBatch decides what becomes of the messages of one callback with BatchSize above 1: the keyed ones go
// through ProcessBatch together, the others are parked one by one. The client acknowledges the callback as a
// whole, so when one message is not done every message is sent back (a committed one comes back as a
// Duplicate), and each is reported Acked only when the whole callback is acknowledged. A message that would go
// to the broker's %DLQ% (it cannot even be parked) is sent back with the others instead: the broker moves it to
// the %DLQ% itself after MaxReconsumeTimes deliveries.
func (c *Consumer) handleBatch(ctx context.Context, ms []*primitive.MessageExt) consumer.ConsumeResult {
	start := time.Now()
	outs := make([]Outcome, 0, len(ms))
	unusable := func(msg *Message, cause error) {
		o, err := c.park(msg, cause)
		out := Outcome{Message: msg, Result: inbox.Failed, Err: err, Unusable: true}
		if o == outcomeDone {
			out.Result = inbox.Parked
		}
		outs = append(outs, out)
	}
	var keyed []*Message
	for _, m := range ms {
		msg, err := c.message(m)
		if err != nil {
			unusable(msg, err)
			continue
		}
		if err := c.mapKey(msg); err != nil {
			c.log.Error("inbox/rocketmq: InboxKey panicked; the batch will be delivered again", "key", msg.Key,
				"msg_id", msg.MessageID, "error", err)
			outs = append(outs, Outcome{Message: msg, Result: inbox.Failed, Err: err})
			continue
		}
		keyed = append(keyed, msg)
	}
	if len(keyed) > 0 {
		for i, r := range c.runBatch(c.base, keyed) {
			msg := keyed[i]
			switch {
			case r.Err == nil && (r.Result == inbox.Processed || r.Result == inbox.Duplicate || r.Result == inbox.Parked):
				outs = append(outs, Outcome{Message: msg, Result: r.Result})
			case errors.Is(r.Err, inbox.ErrInvalidDelivery), errors.Is(r.Err, inbox.ErrFingerprintMismatch):
				unusable(msg, fmt.Errorf("%w: %w", ErrUnusable, r.Err))
			default:
				c.log.Warn("inbox/rocketmq: message failed; it will be delivered again with its batch", "key", msg.Key,
					"msg_id", msg.MessageID, "attempt", msg.Attempt, "error", r.Err)
				outs = append(outs, Outcome{Message: msg, Result: r.Result, Err: r.Err})
			}
		}
	}
	acked := true
	for _, o := range outs {
		if o.Err != nil {
			acked = false
		}
	}
	for _, o := range outs {
		o.Acked = acked
		c.report(o, start)
	}
	if !acked {
		return c.retry(ctx, c.cfg.SuspendTime)
	}
	return consumer.ConsumeSuccess
}

// mapKey applies Config.InboxKey to msg; a panic in it is an error (the message is delivered again, as when
// process recovers one).
func (c *Consumer) mapKey(msg *Message) (err error) {
	if c.cfg.InboxKey == nil {
		return nil
	}
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("inbox/rocketmq: InboxKey panicked: %v", v)
		}
	}()
	msg.Key = c.cfg.InboxKey(msg)
	return nil
}

// process maps the message to its inbox key and runs it through Process, inside the Interceptor if there is
// one. A panic of InboxKey or Interceptor becomes an error: left to the client, it would strand the message in
// its process queue until the ConsumeTimeout sweep.
func (c *Consumer) process(msg *Message) (res inbox.Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("inbox/rocketmq: InboxKey or Interceptor panicked; message will be delivered again",
				"key", msg.Key, "msg_id", msg.MessageID, "panic", v, "stack", string(debug.Stack()))
			res, err = inbox.Failed, fmt.Errorf("inbox/rocketmq: InboxKey or Interceptor panicked: %v", v)
		}
	}()
	if c.cfg.InboxKey != nil {
		msg.Key = c.cfg.InboxKey(msg)
	}
	next := func(ctx context.Context) (inbox.Result, error) { return c.run(ctx, msg) }
	if c.cfg.Interceptor == nil {
		return next(c.base)
	}
	return c.cfg.Interceptor(c.base, msg, next)
}

// unusable parks a message that cannot be processed under its own key and reports it.
func (c *Consumer) unusable(msg *Message, cause error, start time.Time) outcome {
	o, err := c.park(msg, cause)
	out := Outcome{Message: msg, Result: inbox.Failed, Err: err, Unusable: true}
	if o == outcomeDone {
		out.Result, out.Acked = inbox.Parked, true
	}
	c.report(out, start)
	return o
}

// report hands out to Config.OnOutcome.
func (c *Consumer) report(out Outcome, start time.Time) {
	if c.cfg.OnOutcome == nil {
		return
	}
	out.Duration = time.Since(start)
	c.cfg.OnOutcome(out)
}

// message builds the handler's view of m. The error reports a missing business key; msg is complete anyway.
func (c *Consumer) message(m *primitive.MessageExt) (*Message, error) {
	props := m.GetProperties()
	topic := m.Topic
	if c.cfg.Namespace != "" {
		topic = strings.TrimPrefix(topic, c.cfg.Namespace+"%")
	}
	wm, _ := rmqwire.Decode(props, m.Body) // the key is chosen below, by the configuration
	msg := &Message{
		Delivery: inbox.Delivery{
			Payload:   wm.Payload,
			Headers:   wm.Headers,
			Topic:     topic,
			MessageID: m.MsgId,
			Attempt:   int(max(m.ReconsumeTimes, 0)),
		},
		Tag:         wm.Tag,
		ShardingKey: wm.ShardingKey,
		OutboxID:    wm.OutboxID,
		QueueOffset: m.QueueOffset,
		BornAt:      time.UnixMilli(m.BornTimestamp),
		StoredAt:    time.UnixMilli(m.StoreTimestamp),
	}
	if m.Queue != nil {
		msg.Queue = m.Queue.QueueId
	}
	msg.MessageKey = props[c.cfg.KeyProperty]
	if msg.MessageKey == "" && !c.cfg.RequireKeyProperty {
		if keys := strings.Fields(props[rmqwire.PropKeys]); len(keys) > 0 {
			msg.MessageKey = keys[0]
		}
	}
	msg.Key = msg.MessageKey // Config.InboxKey may map it (process)
	if msg.Key == "" {
		what := "property " + c.cfg.KeyProperty
		if !c.cfg.RequireKeyProperty {
			what += " nor KEYS"
		}
		return msg, fmt.Errorf("%w: message %s carries no business key (neither %s)", ErrUnusable, m.MsgId, what)
	}
	return msg, nil
}

// park records a message that cannot be processed under its own key in the inbox's dead-letter table, under the
// key inbox.Key("txbox-unusable", topic, message id) — stable across redeliveries of the same broker message —
// with cause as its last error (inbox.Park), so that it is listed, replayable and droppable like any parked
// message (a payload over the inbox's MaxPayloadBytes is parked cut, see inbox.Park). It returns outcomeRetry
// when the database does not answer (the message comes back), and outcomeDeadLetter when Park refuses even the
// stand-in delivery, each with the error.
func (c *Consumer) park(msg *Message, cause error) (outcome, error) {
	d := msg.Delivery
	d.Key = inbox.Key("txbox-unusable", d.Topic, d.MessageID)
	res, err := c.parkIn(c.base, d, cause)
	if errors.Is(err, inbox.ErrInvalidDelivery) && d.Headers != nil {
		d.Headers = nil // headers that are not valid UTF-8: park without them
		res, err = c.parkIn(c.base, d, cause)
	}
	switch {
	case err == nil:
		// Parked, or Duplicate when the stand-in key is already recorded: this broker message was parked before.
		c.log.Warn("inbox/rocketmq: unusable message parked in the inbox's dead-letter table",
			"parked_key", d.Key, "msg_id", d.MessageID, "result", res.String(), "reason", cause)
		return outcomeDone, nil
	case errors.Is(err, inbox.ErrInvalidDelivery):
		c.log.Error("inbox/rocketmq: unusable message cannot be parked in the inbox; sending it to the broker's "+
			"dead-letter queue %DLQ%"+c.cfg.Group, "msg_id", d.MessageID, "reason", cause, "error", err)
		return outcomeDeadLetter, fmt.Errorf("%w; parking it failed: %w", cause, err)
	}
	c.log.Warn("inbox/rocketmq: could not park an unusable message; it will be delivered again",
		"msg_id", d.MessageID, "reason", cause, "error", err)
	return outcomeRetry, fmt.Errorf("%w; parking it failed: %w", cause, err)
}

// Shutdown stops handling messages and shuts the consumer down, losing nothing:
//
//  1. new deliveries are no longer handled (nor acknowledged) and pulling stops;
//  2. handlers in flight are waited for — until ctx ends, when their ctx is cancelled, their transactions roll
//     back and Shutdown returns ErrShutdown once they have returned;
//  3. the client is shut down, which persists the group's offsets: acknowledged messages are behind them,
//     everything else is delivered again to the group's next consumer.
//
// Calling it again returns the first call's result.
func (c *Consumer) Shutdown(ctx context.Context) error {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		c.pc.Suspend()

		done := make(chan struct{})
		go func() {
			c.inflight.Wait()
			close(done)
		}()
		var errs []error
		select {
		case <-done:
		case <-ctx.Done():
			c.cancelBase()
			<-done // cancelled handlers roll back and return promptly
			errs = append(errs, fmt.Errorf("%w: %w", ErrShutdown, context.Cause(ctx)))
		}
		if err := c.pc.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("inbox/rocketmq: shut down push consumer: %w", err))
		}
		c.releaseTLS()
		close(c.released)
		c.cancelBase()
		c.stopErr = errors.Join(errs...)
	})
	return c.stopErr
}

// Close is Shutdown without a deadline, for io.Closer.
func (c *Consumer) Close() error { return c.Shutdown(context.Background()) }
