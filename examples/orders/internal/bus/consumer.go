package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/rmqwire"
)

// Message is what a consumer's handler gets: the business key the producer enqueued and the payload.
type Message struct {
	Key     string
	Payload []byte
}

// Handler applies one message's effects in tx, the inbox's transaction. It runs at most once per inbox key
// with a committed result.
type Handler func(ctx context.Context, tx *sqlx.Tx, m Message) error

// ConsumerConfig configures StartConsumer.
type ConsumerConfig struct {
	NameServers []string // required, literal IP:port
	Group       string   // required: consumer group (one per service)
	Instance    string   // required: unique per client in a process
	Topic       string   // required
	Inbox       *inbox.Inbox
	// InboxKey maps the message's key (the producer's outbox key) to the key the inbox records. Default: the
	// message key itself. The payment service records "<order>/payment": one payment per order, whichever
	// message asked for it.
	InboxKey func(messageKey string) string
	Handler  Handler
	// HandlerTimeout is the inbox's handler deadline; the injected slow handler waits past it. Required when
	// Faults.SlowPercent > 0.
	HandlerTimeout time.Duration
	Faults         Faults
	Stats          *Stats       // required
	Logger         *slog.Logger // default: discard
	// FromFirstOffset makes a new consumer group start at the beginning of the topic (tests and the demo use
	// fresh topics); the default is RocketMQ's, the last offset.
	FromFirstOffset bool
	// WithoutInbox, when set, runs the handler in a plain transaction on this database instead of through the
	// inbox: what a consumer without txbox does. The demo's -without-inbox shows what that costs.
	WithoutInbox *sqlx.DB
}

// Consumer is a RocketMQ push consumer that runs every message through an inbox.
type Consumer struct {
	cfg      ConsumerConfig
	pc       rocketmq.PushConsumer
	log      *slog.Logger
	injected sync.Map // fault + "\x00" + key → struct{}: each key gets its fault once

	mu       sync.Mutex // guards closing and wg.Add against Close's wg.Wait
	closing  bool
	inFlight sync.WaitGroup
}

// StartConsumer subscribes to cfg.Topic and starts consuming. The topic must exist (the client refuses to start
// without a route). Stop it with Close.
func StartConsumer(cfg ConsumerConfig) (*Consumer, error) {
	switch {
	case len(cfg.NameServers) == 0, cfg.Group == "", cfg.Instance == "", cfg.Topic == "":
		return nil, errors.New("bus: consumer needs NameServers, Group, Instance and Topic")
	case cfg.Inbox == nil || cfg.Handler == nil || cfg.Stats == nil:
		return nil, errors.New("bus: consumer needs Inbox, Handler and Stats")
	case cfg.Faults.SlowPercent > 0 && cfg.HandlerTimeout <= 0:
		return nil, errors.New("bus: Faults.SlowPercent needs HandlerTimeout")
	}
	if err := cfg.Faults.Validate(); err != nil {
		return nil, err
	}
	if cfg.InboxKey == nil {
		cfg.InboxKey = func(k string) string { return k }
	}
	c := &Consumer{cfg: cfg, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	opts := []consumer.Option{
		consumer.WithNameServer(cfg.NameServers),
		consumer.WithGroupName(cfg.Group),
		consumer.WithInstance(cfg.Instance),
		consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeMessageBatchMaxSize(1),
	}
	if cfg.FromFirstOffset {
		opts = append(opts, consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	}
	pc, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: new consumer %s: %w", cfg.Group, err)
	}
	if err := pc.Subscribe(cfg.Topic, consumer.MessageSelector{}, c.consume); err != nil {
		_ = pc.Shutdown()
		return nil, fmt.Errorf("bus: subscribe %s to %s: %w", cfg.Group, cfg.Topic, err)
	}
	if err := pc.Start(); err != nil {
		_ = pc.Shutdown()
		return nil, fmt.Errorf("bus: start consumer %s on %s (does the topic exist?): %w", cfg.Group, cfg.Topic, err)
	}
	c.pc = pc
	return c, nil
}

// Close stops taking messages, waits for the handlers in flight, then shuts the client down. Messages the
// broker hands over meanwhile go back to it, to be redelivered.
func (c *Consumer) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.pc.Suspend()
	c.inFlight.Wait()
	return c.pc.Shutdown()
}

func (c *Consumer) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return false
	}
	c.inFlight.Add(1)
	return true
}

// consume is the push consumer's callback. Its result is explicit on every path: ConsumeSuccess is the zero
// value, so "return 0, err" would acknowledge a failure.
func (c *Consumer) consume(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	if !c.enter() {
		return consumer.ConsumeRetryLater, nil
	}
	defer c.inFlight.Done()
	for _, m := range msgs {
		switch c.handle(ctx, m) {
		case ack:
		case retry:
			return consumer.ConsumeRetryLater, nil
		case deadLetter:
			// Delay level -1 on the way back sends the message straight to %DLQ%<group>, where an operator
			// finds it, instead of 16 pointless redeliveries.
			if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok {
				cc.DelayLevelWhenNextConsume = -1
			}
			return consumer.ConsumeRetryLater, nil
		}
	}
	return consumer.ConsumeSuccess, nil
}

type outcome int

const (
	retry      outcome = iota // nothing committed (or an injected lost ACK): deliver again
	ack                       // processed, duplicate or parked: the broker may forget it
	deadLetter                // unusable (no business key): to the broker's dead-letter queue
)

// handle runs one message through the inbox and says what the broker should do with it.
func (c *Consumer) handle(ctx context.Context, m *primitive.MessageExt) outcome {
	props := m.GetProperties()
	// The message as relay/rocketmq wrote it (package rmqwire): the exact key in a property of its own (KEYS
	// holds it encoded), user headers apart from the broker's properties, an empty payload restored.
	key := props[rmqwire.PropKey]
	if key == "" {
		// Without a business key the inbox cannot deduplicate it, and redelivery will not add one.
		c.log.Error("message without a business key, sent to the dead-letter queue", "topic", m.Topic, "msg_id", m.MsgId)
		c.cfg.Stats.failed.Add(1)
		return deadLetter
	}
	payload := rmqwire.Body(props, m.Body)
	st := c.cfg.Stats
	st.delivered.Add(1)
	fault := c.cfg.Faults.For(key)

	slowNow := false
	h := func(ctx context.Context, tx *sqlx.Tx) error {
		if err := c.cfg.Handler(ctx, tx, Message{Key: key, Payload: payload}); err != nil {
			return err
		}
		if fault == Slow && c.once(Slow, key) {
			slowNow = true
			// The writes are done but not committed; outlive the deadline so the inbox rolls them back. The
			// timer only guards against an inbox that does not cancel ctx: the attempt must fail either way.
			t := time.NewTimer(c.cfg.HandlerTimeout + time.Second)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return fmt.Errorf("injected slow handler: %w", ctx.Err())
			case <-t.C:
				return errors.New("injected slow handler: the inbox's deadline did not cancel it")
			}
		}
		return nil
	}
	d := inbox.Delivery{
		Key: c.cfg.InboxKey(key), Payload: payload, Headers: rmqwire.Headers(props),
		Topic: m.Topic, MessageID: m.MsgId, Attempt: int(max(m.ReconsumeTimes, 0)),
	}
	var res inbox.Result
	var err error
	if c.cfg.WithoutInbox != nil {
		res, err = c.withoutInbox(ctx, h)
	} else {
		res, err = c.cfg.Inbox.Process(ctx, d, h)
	}
	switch {
	case err != nil && slowNow:
		st.timedOut.Add(1)
		c.log.Debug("slow handler rolled back", "key", key)
		return retry
	case err != nil:
		st.failed.Add(1)
		c.log.Warn("message failed, the broker will redeliver it", "key", key, "err", err)
		return retry
	case res == inbox.Parked:
		// Failed Config.MaxAttempts times: parked in the inbox's dead-letter table for an operator, so the
		// broker can forget it instead of retrying it for hours.
		st.parked.Add(1)
		c.log.Error("message parked in the inbox's dead letters", "key", key)
		return ack
	case res == inbox.Duplicate:
		switch {
		case fault == LostAck && c.injectedBefore(LostAck, key):
			st.dupLost.Add(1)
		case fault == Resend:
			st.dupResent.Add(1)
		default:
			st.dupOther.Add(1)
		}
		return ack
	}
	st.processed.Add(1)
	if fault == LostAck && c.once(LostAck, key) {
		// Committed, but the broker is told otherwise: to the broker this is a lost ACK, and it delivers the
		// message again.
		st.lostAcks.Add(1)
		return retry
	}
	return ack
}

// withoutInbox runs h in a transaction of its own, with the same deadline as the inbox would set: every
// delivery is applied, duplicates included.
func (c *Consumer) withoutInbox(ctx context.Context, h inbox.Handler) (inbox.Result, error) {
	if c.cfg.HandlerTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.HandlerTimeout)
		defer cancel()
	}
	tx, err := c.cfg.WithoutInbox.BeginTxx(ctx, nil)
	if err != nil {
		return inbox.Failed, err
	}
	if err := h(ctx, tx); err != nil {
		_ = tx.Rollback()
		return inbox.Failed, err
	}
	if err := tx.Commit(); err != nil {
		return inbox.Failed, err
	}
	return inbox.Processed, nil
}

// once reports whether this is the first time fault is injected for key.
func (c *Consumer) once(f Fault, key string) bool {
	_, loaded := c.injected.LoadOrStore(f.String()+"\x00"+key, struct{}{})
	return !loaded
}

func (c *Consumer) injectedBefore(f Fault, key string) bool {
	_, ok := c.injected.Load(f.String() + "\x00" + key)
	return ok
}
