package rocketmq

import (
	"fmt"
	"math"
	"time"

	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/rmqwire"
)

// Message size limits.
const (
	// DefaultMaxMessageSize is the broker's default maxMessageSize (4 MiB): the largest body it stores. It is
	// also outbox.DefaultMaxPayloadBytes, so an outbox with default settings and a broker with default settings
	// agree.
	DefaultMaxMessageSize = 4 << 20
	// MaxMessageSizeLimit is the largest MaxMessageSize accepted: the broker reads a request as one frame of at
	// most 16 MiB (its com.rocketmq.remoting.frameMaxLength) and drops the connection when a frame is larger,
	// so a body must leave room in it for the request header (properties included).
	MaxMessageSizeLimit = 15 << 20
)

// Limits are what a RocketMQ broker accepts, for refusing a message when it is enqueued rather than when the
// relay finds that the broker never will: give Check (or Limits{...}.Check, or Publisher.Check) to
// outbox.Config.Check. A message that passes Check is sent by a Publisher with the same MaxMessageSize and
// Namespace; one that fails it would fail Publish with ErrInvalidMessage (a dead letter at once).
//
// Check refuses, naming the field:
//
//   - a topic the broker refuses (rmqwire.CheckTopic): a character outside [%|a-zA-Z0-9_-], more than 127
//     characters with the namespace's "ns%" prefix, a system, retry or dead-letter topic;
//   - what the wire format cannot carry (rmqwire.Encode): the bytes 0x01 and 0x02 in the key, tag, sharding key or
//     a header, header names RocketMQ or txbox use themselves (KEYS, TAGS, DELAY, TXBOX_KEY, ...), and
//     properties longer than the broker stores, measured as the Publisher encodes them (the trace headers
//     Enqueue adds and the outbox id included);
//   - a payload longer than MaxMessageSize. The Publisher compresses a body only when that makes it smaller,
//     so the body the broker checks is never longer than the payload.
type Limits struct {
	// MaxMessageSize is the broker's maxMessageSize, the longest body it stores. Default DefaultMaxMessageSize
	// (4 MiB); between 1 and MaxMessageSizeLimit. Set it to the broker's setting when that was changed.
	MaxMessageSize int
	// Namespace is the Publisher's Config.Namespace, which the topic's length includes. Default none.
	Namespace string
}

// Check is Limits{}.Check: the limits of a broker with default settings, for a Publisher without a namespace.
//
//	ob, err := outbox.New(outbox.Config{Dialect: dialect.MySQL, Check: rocketmq.Check})
func Check(m outbox.Message) error { return Limits{}.Check(m) }

// outboxIDPlaceholder stands for the outbox row id, unknown before the insert, at its longest.
const outboxIDPlaceholder = math.MaxInt64

// Check returns an error wrapping ErrInvalidMessage when a Publisher with these limits could not send m. It
// has the signature of outbox.Config.Check.
func (l Limits) Check(m outbox.Message) error {
	l, err := l.withDefaults()
	if err != nil {
		return err
	}
	if _, _, err := l.encode(m, outboxIDPlaceholder); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	return nil
}

func (l Limits) withDefaults() (Limits, error) {
	switch {
	case l.MaxMessageSize == 0:
		l.MaxMessageSize = DefaultMaxMessageSize
	case l.MaxMessageSize < 1 || l.MaxMessageSize > MaxMessageSizeLimit:
		return l, fmt.Errorf("%w: MaxMessageSize must be between 1 and %d, got %d", ErrInvalidConfig,
			MaxMessageSizeLimit, l.MaxMessageSize)
	}
	return l, nil
}

// encode checks m against l and returns its properties and body as the Publisher sends them (package rmqwire).
// DeliverAt is encoded when set: a timer property is sent only for a DeliverAt still ahead at publish time, and
// checking as if it were keeps the property bytes counted.
func (l Limits) encode(m outbox.Message, outboxID int64) (map[string]string, []byte, error) {
	topic := m.Topic
	if l.Namespace != "" {
		topic = l.Namespace + "%" + m.Topic
	}
	if err := rmqwire.CheckTopic(topic); err != nil {
		return nil, nil, err
	}
	if len(m.Payload) > l.MaxMessageSize {
		return nil, nil, fmt.Errorf("payload is %d bytes, more than the broker's maxMessageSize (%d): %w",
			len(m.Payload), l.MaxMessageSize, rmqwire.ErrInvalid)
	}
	wm := rmqwire.Message{Topic: m.Topic, Key: m.Key, Tag: m.Tag, ShardingKey: m.ShardingKey, Payload: m.Payload,
		Headers: m.Headers, OutboxID: outboxID, DeliverAt: m.DeliverAt}
	return rmqwire.Encode(wm)
}

// deliverAt returns the DeliverAt to send for a record published at now: only one still in the future becomes a
// timer message.
func deliverAt(at, now time.Time) time.Time {
	if at.After(now) {
		return at
	}
	return time.Time{}
}
