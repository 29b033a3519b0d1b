package rocketmq

import (
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/outbox"
)

// newMessage maps an outbox record to a RocketMQ message (package rmqwire) after checking it against l, which
// has its defaults filled in. A fresh message per call: the client writes into it (namespace, UNIQ_KEY), and
// UNIQ_KEY must differ between attempts anyway.
func newMessage(l Limits, r outbox.Record, now time.Time) (*primitive.Message, error) {
	m := r.Message
	m.DeliverAt = deliverAt(r.DeliverAt, now) // RocketMQ 5 timer message: stored now, delivered then (ms)
	props, body, err := l.encode(m, r.ID)
	if err != nil {
		return nil, invalid(err)
	}
	msg := primitive.NewMessage(r.Topic, body)
	// WithProperties, not WithProperty: the latter drops empty values silently, and every value set here
	// is non-empty anyway (empty headers travel in rmqwire.PropEmptyHeaders).
	msg.WithProperties(props)
	return msg, nil
}
