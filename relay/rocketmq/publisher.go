package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/txbox/txbox/internal/rmqclient"
	"github.com/txbox/txbox/internal/rmqlog"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// Publisher is a relay.Publisher on a rocketmq-client-go producer. It is safe for concurrent use.
type Publisher struct {
	cfg    Config
	limits Limits
	p      rmq.Producer
	log    *slog.Logger
	// releaseTLS unregisters the client's TLS setting (rmqclient.AcquireTLS) once it is shut down.
	releaseTLS func()

	// mu guards closed and the Add side of inflight, so that Shutdown's Wait never races an Add.
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup
	stopOnce sync.Once
	stopErr  error

	// topics holds a *topicGate per topic: see send.
	topics sync.Map
	// sel is the producer's queue selector; lanes, spread and senders serve batching (batch.go).
	sel     *selector
	lanes   sync.Map // laneKey → *lane
	spread  atomic.Uint64
	senders sync.WaitGroup
}

// topicGate serialises the sends to a topic until one has succeeded. Concurrent first sends to a topic race
// inside the client — one loads the route while another finds the queues but not yet the broker's address and
// fails at once with "route info not found" — so the first send goes alone.
type topicGate struct {
	turn chan struct{} // capacity 1: holding a token is sending alone
	warm atomic.Bool
}

var _ relay.Publisher = (*Publisher)(nil)

// New validates cfg, creates the producer and starts it. Starting contacts no broker yet: routes are fetched at
// the first Publish of each topic.
func New(cfg Config) (*Publisher, error) { return newPublisher(cfg) }

func newPublisher(cfg Config, extra ...producer.Option) (*Publisher, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	writeTLS, releaseTLS, err := rmqclient.AcquireTLS(cfg.TLS)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS: %w", ErrInvalidConfig, err)
	}
	rmqlog.Install(cfg.Logger, cfg.ClientLogLevel.Level())
	sel := newSelector()
	opts := []producer.Option{
		producer.WithNameServer(cfg.NameServers),
		producer.WithGroupName(cfg.Group),
		producer.WithInstanceName(cfg.InstanceName),
		producer.WithSendMsgTimeout(cfg.SendTimeout),
		producer.WithRetry(cfg.Retries),
		// Same ShardingKey, same queue, also while a broker is lost (selector.go); batches go to their lane's
		// queue.
		producer.WithQueueSelector(sel),
		// Publish compresses itself, and only when that shortens the body (compress.go).
		producer.WithCompressMsgBodyOverHowmuch(math.MaxInt32),
	}
	if cfg.Namespace != "" {
		opts = append(opts, producer.WithNamespace(cfg.Namespace))
	}
	if writeTLS {
		// The switch is process-global: AcquireTLS made sure no running txbox client relies on its old value.
		opts = append(opts, producer.WithTls(cfg.TLS))
	}
	if cfg.Credentials.AccessKey != "" {
		opts = append(opts, producer.WithCredentials(primitive.Credentials{
			AccessKey: cfg.Credentials.AccessKey, SecretKey: cfg.Credentials.SecretKey,
			SecurityToken: cfg.Credentials.SecurityToken,
		}))
	}
	p, err := rmq.NewProducer(append(opts, extra...)...)
	if err != nil {
		releaseTLS()
		return nil, fmt.Errorf("relay/rocketmq: create producer: %w", err)
	}
	if err := p.Start(); err != nil {
		releaseTLS()
		return nil, fmt.Errorf("relay/rocketmq: start producer (group %s, instance %s): %w", cfg.Group,
			cfg.InstanceName, err)
	}
	return &Publisher{cfg: cfg, limits: Limits{MaxMessageSize: cfg.MaxMessageSize, Namespace: cfg.Namespace},
		p: p, sel: sel, releaseTLS: releaseTLS, log: cfg.Logger.With("component", "txbox.relay.rocketmq")}, nil
}

// Config returns the configuration in use, defaults filled in.
func (p *Publisher) Config() Config { return p.cfg }

// Limits returns the limits Publish checks records against: the configured MaxMessageSize and Namespace.
func (p *Publisher) Limits() Limits { return p.limits }

// Check is p.Limits().Check, for outbox.Config.Check when the producer runs in the relay's process.
func (p *Publisher) Check(m outbox.Message) error { return p.limits.Check(m) }

// Publish sends r and returns nil only when the broker answered SendOK. Every other outcome is an error: a client
// error (ErrSend; when the broker or the topic's route could not be reached it also matches
// relay.ErrUnavailable), another status such as FlushDiskTimeout (ErrNotDurable, which the client itself reports
// as success) or ctx ending first, which the relay retries; a record that fails the Limits (ErrInvalidMessage,
// nothing sent) or a broker refusal no retry can change (ErrRefused), which both match relay.ErrPermanent. See
// the package documentation for the mapping.
func (p *Publisher) Publish(ctx context.Context, r outbox.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("relay/rocketmq: publish outbox row %d: %w", r.ID, context.Cause(ctx))
	}
	msg, err := newMessage(p.limits, r, time.Now())
	if err != nil {
		return fmt.Errorf("relay/rocketmq: publish outbox row %d: %w", r.ID, err)
	}
	if !p.begin() {
		return fmt.Errorf("relay/rocketmq: publish outbox row %d: %w", r.ID, ErrClosed)
	}
	defer p.inflight.Done()

	res, err := p.send(ctx, msg)
	switch {
	case isRefusal(err):
		return fmt.Errorf("relay/rocketmq: publish outbox row %d to %s: %w", r.ID, r.Topic, err)
	case err != nil:
		if ctx.Err() != nil {
			// The client reports a cancelled wait as its own timeout error; say what really happened.
			return fmt.Errorf("relay/rocketmq: publish outbox row %d to %s: %w: %w (%w)", r.ID, r.Topic, ErrSend,
				context.Cause(ctx), err)
		}
		if unavailable(err) {
			return fmt.Errorf("relay/rocketmq: publish outbox row %d to %s: %w (%w): %w", r.ID, r.Topic, ErrSend,
				relay.ErrUnavailable, err)
		}
		return fmt.Errorf("relay/rocketmq: publish outbox row %d to %s: %w: %w", r.ID, r.Topic, ErrSend, err)
	case res == nil:
		return fmt.Errorf("relay/rocketmq: publish outbox row %d to %s: %w: no send result", r.ID, r.Topic, ErrSend)
	case res.Status != primitive.SendOK:
		serr := &StatusError{Status: res.Status, MsgID: res.MsgID}
		p.log.WarnContext(ctx, "relay/rocketmq: broker did not confirm a durable write; the row will be sent again",
			"outbox_id", r.ID, "topic", r.Topic, "key", r.Key, "status", statusName(res.Status), "msg_id", res.MsgID)
		return fmt.Errorf("relay/rocketmq: publish outbox row %d to %s: %w", r.ID, r.Topic, serr)
	}
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.DebugContext(ctx, "relay/rocketmq: published", "outbox_id", r.ID, "topic", r.Topic, "key", r.Key,
			"msg_id", res.MsgID, "queue", res.MessageQueue.QueueId, "queue_offset", res.QueueOffset)
	}
	return nil
}

func (p *Publisher) send(ctx context.Context, msg *primitive.Message) (*primitive.SendResult, error) {
	v, ok := p.topics.Load(msg.Topic)
	if !ok {
		v, _ = p.topics.LoadOrStore(msg.Topic, &topicGate{turn: make(chan struct{}, 1)})
	}
	g := v.(*topicGate)
	if !g.warm.Load() {
		select {
		case g.turn <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !g.warm.Load() {
			defer func() { <-g.turn }()
			res, err := p.sendAlone(ctx, msg)
			if err == nil {
				g.warm.Store(true)
			}
			return res, err
		}
		<-g.turn // warmed up while this call waited
	}
	sent := msg.Topic
	if p.cfg.Namespace != "" {
		sent = p.cfg.Namespace + "%" + msg.Topic
	}
	var res *primitive.SendResult
	var err error
	if p.cfg.MaxBatch > 1 && p.sel.known(sent) && batchable(msg) {
		res, err = p.batched(ctx, msg, sent)
	} else {
		res, err = p.sendAlone(ctx, msg)
	}
	if k := msg.GetShardingKey(); err != nil && k != "" {
		// The client asked the selector for a queue (so that it sees the current route), and got none: the key's
		// queue is on a broker that left the route, and another queue would break the key's order.
		if q, ok := p.sel.keyLane(sent, k); !ok && q.broker != "" {
			err = fmt.Errorf("%w: sharding key %q maps to queue %d of %s: %w", ErrQueueUnavailable, k, q.id, q.broker, err)
		}
	}
	return res, err
}

// sendAlone sends one message in a request of its own, compressed when that makes it shorter. A broker refusal
// comes back wrapped in ErrRefused.
func (p *Publisher) sendAlone(ctx context.Context, msg *primitive.Message) (*primitive.SendResult, error) {
	compress(msg)
	res, err := p.p.SendSync(ctx, msg)
	if perm := refusal(err); perm != nil {
		return res, perm
	}
	return res, err
}

// batchable: timer messages and large bodies go alone (the broker rejects timers in batches; the client
// compresses only single messages).
func batchable(msg *primitive.Message) bool {
	return len(msg.Body) <= maxBatchedBody && msg.GetProperty(primitive.PropertyTimerDeliverMS) == ""
}

func (p *Publisher) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

// Shutdown stops accepting Publish calls (they return ErrClosed), waits for those in flight to return, then
// shuts the producer down. When ctx ends first it shuts the producer down anyway and returns ctx's error; the
// sends still waiting then fail within SendTimeout and their rows stay in the outbox. Calling it again returns the first call's result.
func (p *Publisher) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.inflight.Wait()
		close(done)
	}()
	var waitErr error
	select {
	case <-done:
	case <-ctx.Done():
		waitErr = fmt.Errorf("relay/rocketmq: shutdown: publishes still in flight: %w", context.Cause(ctx))
	}
	p.stopOnce.Do(func() {
		if waitErr == nil {
			// Every caller has returned, so the lanes are empty or sending their last batch.
			p.senders.Wait()
		}
		if err := p.p.Shutdown(); err != nil {
			p.stopErr = fmt.Errorf("relay/rocketmq: shut down producer: %w", err)
		}
		p.releaseTLS()
	})
	return errors.Join(waitErr, p.stopErr)
}

// Close is Shutdown without a deadline, for io.Closer.
func (p *Publisher) Close() error { return p.Shutdown(context.Background()) }
