package rocketmq

import (
	"fmt"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/rmqwire"
)

// newMessage maps an outbox record to a RocketMQ message (package rmqwire). A fresh message per call: the client
// writes into it (namespace, UNIQ_KEY), and UNIQ_KEY must differ between attempts anyway.
func newMessage(r outbox.Record, now time.Time) (*primitive.Message, error) {
	if r.Topic == "" {
		return nil, invalid(fmt.Errorf("empty topic"))
	}
	wm := rmqwire.Message{Topic: r.Topic, Key: r.Key, Tag: r.Tag, ShardingKey: r.ShardingKey, Payload: r.Payload,
		Headers: r.Headers, OutboxID: r.ID}
	if r.DeliverAt.After(now) {
		// RocketMQ 5 timer message: stored now, delivered at this instant (millisecond precision).
		wm.DeliverAt = r.DeliverAt
	}
	props, body, err := rmqwire.Encode(wm)
	if err != nil {
		return nil, invalid(err)
	}
	msg := primitive.NewMessage(r.Topic, body)
	// WithProperties, not WithProperty: the latter drops empty values silently, and every value set here
	// is non-empty anyway (empty headers travel in rmqwire.PropEmptyHeaders).
	msg.WithProperties(props)
	return msg, nil
}
