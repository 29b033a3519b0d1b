package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// KeyProperty is the message property that carries the exact business key. The key is also set as the
// message's Keys, where RocketMQ's tooling (queryMsgByKey) looks for it.
const KeyProperty = "TXBOX_KEY"

// ProducerConfig configures NewProducer.
type ProducerConfig struct {
	NameServers []string // required, literal IP:port (the client cannot resolve "localhost")
	Group       string   // required: producer group
	Instance    string   // required: unique per client in a process (clients share connections by instance)
}

// Producer is a relay.Publisher on a rocketmq-client-go producer.
type Producer struct {
	p rocketmq.Producer
}

var _ relay.Publisher = (*Producer)(nil)

// NewProducer starts a producer. Close it with Close.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.NameServers) == 0 || cfg.Group == "" || cfg.Instance == "" {
		return nil, errors.New("bus: producer needs NameServers, Group and Instance")
	}
	p, err := rocketmq.NewProducer(
		producer.WithNameServer(cfg.NameServers),
		producer.WithGroupName(cfg.Group),
		producer.WithInstanceName(cfg.Instance),
		producer.WithRetry(2),
	)
	if err != nil {
		return nil, fmt.Errorf("bus: new producer: %w", err)
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("bus: start producer: %w", err)
	}
	return &Producer{p: p}, nil
}

// Publish sends r and returns nil only when the broker answered SendOK: SendSync also returns a nil error for
// flush and replica timeouts, which are not durable.
func (p *Producer) Publish(ctx context.Context, r outbox.Record) error {
	msg := primitive.NewMessage(r.Topic, r.Payload)
	msg.WithKeys([]string{r.Key})
	msg.WithProperty(KeyProperty, r.Key)
	msg.WithProperty("TXBOX_OUTBOX_ID", strconv.FormatInt(r.ID, 10))
	if r.Tag != "" {
		msg.WithTag(r.Tag)
	}
	for k, v := range r.Headers {
		msg.WithProperty(k, v)
	}
	res, err := p.p.SendSync(ctx, msg)
	if err != nil {
		return fmt.Errorf("bus: send %s to %s: %w", r.Key, r.Topic, err)
	}
	if res.Status != primitive.SendOK {
		return fmt.Errorf("bus: send %s to %s: broker status %d, not SendOK", r.Key, r.Topic, res.Status)
	}
	return nil
}

// Close shuts the producer down.
func (p *Producer) Close() error { return p.p.Shutdown() }

// Instrument wraps a publisher to count what it publishes into stats and to publish the messages Faults
// chooses for Resend twice, as a producer does when the broker's confirm is lost and it sends again. The copy
// is a new broker message (a new message id) with the same business key and payload: only the key can tell
// them apart.
func Instrument(p relay.Publisher, f Faults, stats *Stats) relay.Publisher {
	return instrumented{p: p, f: f, stats: stats}
}

type instrumented struct {
	p     relay.Publisher
	f     Faults
	stats *Stats
}

func (i instrumented) Publish(ctx context.Context, rec outbox.Record) error {
	if err := i.p.Publish(ctx, rec); err != nil {
		return err
	}
	i.stats.published.Add(1)
	if i.f.For(rec.Key) != Resend {
		return nil
	}
	// A failure here is the relay's to retry like any other: it publishes the row again (a third copy at
	// worst), which the consumer's inbox absorbs too.
	if err := i.p.Publish(ctx, rec); err != nil {
		return err
	}
	i.stats.published.Add(1)
	i.stats.resent.Add(1)
	return nil
}
