package rocketmq

import (
	"fmt"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/rmqwire"
)

// newMessage maps an outbox record to a RocketMQ message (see the package documentation). A fresh message per
// call: the client writes into it (namespace, UNIQ_KEY), and UNIQ_KEY must differ between attempts anyway.
func newMessage(r outbox.Record, now time.Time) (*primitive.Message, error) {
	if r.Topic == "" {
		return nil, invalid(fmt.Errorf("empty topic"))
	}
	if r.Key == "" {
		return nil, invalid(fmt.Errorf("empty key"))
	}
	for _, f := range []struct{ what, v string }{
		{"topic", r.Topic}, {"key", r.Key}, {"tag", r.Tag}, {"sharding key", r.ShardingKey},
	} {
		if err := rmqwire.CheckText(f.what, f.v); err != nil {
			return nil, invalid(err)
		}
	}
	props := make(map[string]string, len(r.Headers)+8)
	if err := rmqwire.SetHeaders(props, r.Headers); err != nil {
		return nil, invalid(err)
	}
	props[rmqwire.PropKey] = r.Key
	props[rmqwire.PropOutboxID] = rmqwire.FormatOutboxID(r.ID)
	// KEYS is the broker's key index (queryMsgByKey, the console's key search); the client joins keys with
	// spaces and the broker splits on them, so the key goes in with '%' and ' ' percent-encoded.
	props[primitive.PropertyKeys] = rmqwire.EncodeKey(r.Key)
	if r.Tag != "" {
		props[primitive.PropertyTags] = r.Tag
	}
	if r.ShardingKey != "" {
		props[primitive.PropertyShardingKey] = r.ShardingKey
	}
	if r.DeliverAt.After(now) {
		// RocketMQ 5 timer message: stored now, delivered at this instant (millisecond precision).
		props[primitive.PropertyTimerDeliverMS] = fmt.Sprint(r.DeliverAt.UnixMilli())
	}
	if n := rmqwire.PropertiesLen(props); n > maxPropertiesLen {
		return nil, invalid(fmt.Errorf("properties (key, tag, sharding key, headers) take %d bytes, more than the "+
			"%d the broker stores", n, maxPropertiesLen))
	}
	body, empty := rmqwire.EncodeBody(r.Payload)
	if empty {
		props[rmqwire.PropEmptyBody] = "1"
	}
	msg := primitive.NewMessage(r.Topic, body)
	// WithProperties, not WithProperty: the latter drops empty values silently, and every value set here
	// is non-empty anyway (empty headers travel in rmqwire.PropEmptyHeaders).
	msg.WithProperties(props)
	return msg, nil
}

// maxPropertiesLen leaves room for the properties the client and broker add (UNIQ_KEY, CLUSTER, WAIT, ...).
const maxPropertiesLen = rmqwire.MaxPropertiesLen - 1024
