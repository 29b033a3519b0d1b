package rmqwire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Properties RocketMQ itself gives a meaning to that the format uses.
const (
	PropKeys        = "KEYS"
	PropTags        = "TAGS"
	PropShardingKey = "SHARDING_KEY"
	PropTimerAt     = "TIMER_DELIVER_MS"
)

// MaxUserPropertiesLen is the most property bytes Encode writes: the broker stores at most MaxPropertiesLen, and
// the client and broker add properties of their own (UNIQ_KEY, CLUSTER, WAIT, ...).
const MaxUserPropertiesLen = MaxPropertiesLen - 1024

// Message is a txbox message as it travels through RocketMQ.
type Message struct {
	Topic       string
	Key         string // the business key; required
	Tag         string
	ShardingKey string
	Payload     []byte
	Headers     map[string]string
	// OutboxID is the outbox row the message was published from; 0 for none.
	OutboxID int64
	// DeliverAt, when set, makes the message a timer message delivered at that instant.
	DeliverAt time.Time
}

// Encode returns the properties and body a producer sends for m (the topic is the producer's to set). It
// returns an error wrapping ErrInvalid, and nothing else, for a message RocketMQ cannot carry as it is.
func Encode(m Message) (props map[string]string, body []byte, err error) {
	if m.Key == "" {
		return nil, nil, fmt.Errorf("empty business key: %w", ErrInvalid)
	}
	for _, f := range []struct{ what, v string }{
		{"topic", m.Topic}, {"key", m.Key}, {"tag", m.Tag}, {"sharding key", m.ShardingKey},
	} {
		if err := CheckText(f.what, f.v); err != nil {
			return nil, nil, err
		}
	}
	props = make(map[string]string, len(m.Headers)+8)
	if err := SetHeaders(props, m.Headers); err != nil {
		return nil, nil, err
	}
	props[PropKey] = m.Key
	props[PropKeys] = EncodeKey(m.Key)
	if m.OutboxID != 0 {
		props[PropOutboxID] = FormatOutboxID(m.OutboxID)
	}
	if m.Tag != "" {
		props[PropTags] = m.Tag
	}
	if m.ShardingKey != "" {
		props[PropShardingKey] = m.ShardingKey
	}
	if !m.DeliverAt.IsZero() {
		props[PropTimerAt] = strconv.FormatInt(m.DeliverAt.UnixMilli(), 10)
	}
	body, empty := EncodeBody(m.Payload)
	if empty {
		props[PropEmptyBody] = "1"
	}
	if n := PropertiesLen(props); n > MaxUserPropertiesLen {
		return nil, nil, fmt.Errorf("properties (key, tag, sharding key, headers) take %d bytes, more than the %d "+
			"the broker stores beside its own: %w", n, MaxUserPropertiesLen, ErrInvalid)
	}
	return props, body, nil
}

// ErrNoKey is returned by Decode for a message that carries no business key.
var ErrNoKey = errors.New("message carries no business key")

// Decode reads a received message's properties and body (the topic is the consumer's to fill in).
//
// The business key is TXBOX_KEY when the message has it (a txbox relay sent it). Otherwise it is the first
// space-separated entry of KEYS, as a producer that is not txbox sets it with the client's WithKeys, taken as it
// is (not DecodeKey'd: only txbox encodes KEYS, and txbox also writes TXBOX_KEY). A message with neither gets
// ErrNoKey, with the rest of Message filled in. Headers are the user properties without RocketMQ's and txbox's
// own.
func Decode(props map[string]string, body []byte) (Message, error) {
	m := Message{
		Tag:         props[PropTags],
		ShardingKey: props[PropShardingKey],
		Payload:     Body(props, body),
		Headers:     Headers(props),
	}
	if id, err := strconv.ParseInt(props[PropOutboxID], 10, 64); err == nil {
		m.OutboxID = id
	}
	if ms, err := strconv.ParseInt(props[PropTimerAt], 10, 64); err == nil {
		m.DeliverAt = time.UnixMilli(ms)
	}
	m.Key = props[PropKey]
	if m.Key == "" {
		if keys := strings.Fields(props[PropKeys]); len(keys) > 0 {
			m.Key = keys[0]
		}
	}
	if m.Key == "" {
		return m, ErrNoKey
	}
	return m, nil
}
