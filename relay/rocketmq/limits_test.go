package rocketmq_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay/rocketmq"
	"github.com/txbox/txbox/rmqwire"
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// What issue 11 found Enqueue accepting and the broker refusing: every one is refused by Check, naming the field,
// and what the broker does take passes.
func TestLimitsCheck(t *testing.T) {
	ok := outbox.Message{Topic: "orders", Key: "12345/paid", Payload: []byte("x")}
	with := func(f func(*outbox.Message)) outbox.Message {
		m := ok
		f(&m)
		return m
	}
	// Headers under the outbox's 32 KiB (as stored JSON) whose properties exceed what the publisher sends.
	bigHeader := strings.Repeat("v", 31800)
	if ob, err := outbox.New(outbox.Config{Dialect: dialect.MySQL}); err != nil || ob.Config().MaxHeaderBytes < len(bigHeader)+16 {
		t.Fatalf("premise: the outbox's default MaxHeaderBytes takes the header (%v)", err)
	}
	refused := map[string]struct {
		m     outbox.Message
		limit rocketmq.Limits
		field string
	}{
		"space in topic":       {with(func(m *outbox.Message) { m.Topic = "bad topic!" }), rocketmq.Limits{}, "topic"},
		"ESC in topic":         {with(func(m *outbox.Message) { m.Topic = "t\x1b[2J" }), rocketmq.Limits{}, "topic"},
		"255-byte topic":       {with(func(m *outbox.Message) { m.Topic = strings.Repeat("t", 255) }), rocketmq.Limits{}, "topic"},
		"128-byte topic":       {with(func(m *outbox.Message) { m.Topic = strings.Repeat("t", 128) }), rocketmq.Limits{}, "topic"},
		"namespace too long":   {with(func(m *outbox.Message) { m.Topic = strings.Repeat("t", 120) }), rocketmq.Limits{Namespace: "prod-eu"}, "topic"},
		"system topic":         {with(func(m *outbox.Message) { m.Topic = "SCHEDULE_TOPIC_XXXX" }), rocketmq.Limits{}, "topic"},
		"retry topic":          {with(func(m *outbox.Message) { m.Topic = "%RETRY%payments" }), rocketmq.Limits{}, "topic"},
		"0x01 in key":          {with(func(m *outbox.Message) { m.Key = "a\x01b" }), rocketmq.Limits{}, "key"},
		"0x02 in tag":          {with(func(m *outbox.Message) { m.Tag = "a\x02" }), rocketmq.Limits{}, "tag"},
		"0x01 in sharding key": {with(func(m *outbox.Message) { m.ShardingKey = "\x01" }), rocketmq.Limits{}, "sharding key"},
		"0x02 in header value": {with(func(m *outbox.Message) { m.Headers = map[string]string{"h": "x\x02y"} }), rocketmq.Limits{}, `header "h"`},
		"reserved header":      {with(func(m *outbox.Message) { m.Headers = map[string]string{"DELAY": "3"} }), rocketmq.Limits{}, `"DELAY"`},
		"properties too long":  {with(func(m *outbox.Message) { m.Headers = map[string]string{"h": bigHeader} }), rocketmq.Limits{}, "properties"},
		"payload over 4 MiB":   {with(func(m *outbox.Message) { m.Payload = make([]byte, 4<<20+1) }), rocketmq.Limits{}, "payload"},
		"64 MiB payload":       {with(func(m *outbox.Message) { m.Payload = make([]byte, 64<<20) }), rocketmq.Limits{MaxMessageSize: rocketmq.MaxMessageSizeLimit}, "payload"},
	}
	for name, c := range refused {
		err := c.limit.Check(c.m)
		if !errors.Is(err, rocketmq.ErrInvalidMessage) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: Check = %v, want ErrInvalidMessage naming %s", name, err, c.field)
		}
	}
	accepted := map[string]outbox.Message{
		"127-byte topic":      with(func(m *outbox.Message) { m.Topic = strings.Repeat("t", 127) }),
		"topic charset":       with(func(m *outbox.Message) { m.Topic = "a-Z_0|9%x" }),
		"spaces and % in key": with(func(m *outbox.Message) { m.Key = "order 1/100% paid" }),
		"unicode everywhere": with(func(m *outbox.Message) {
			m.Key, m.Tag, m.Headers = "ключ/😀", "тег", map[string]string{"名前": "値"}
		}),
		"random 4 MiB payload": with(func(m *outbox.Message) { m.Payload = randomBytes(4 << 20) }),
		"empty payload":        with(func(m *outbox.Message) { m.Payload = nil }),
		"deliver at, big header": with(func(m *outbox.Message) {
			m.DeliverAt, m.Headers = time.Now(), map[string]string{"h": strings.Repeat("v", 30000)}
		}),
	}
	for name, m := range accepted {
		if err := rocketmq.Check(m); err != nil {
			t.Errorf("%s: Check = %v, want nil", name, err)
		}
	}
	if err := (rocketmq.Limits{MaxMessageSize: rocketmq.MaxMessageSizeLimit + 1}).Check(ok); !errors.Is(err, rocketmq.ErrInvalidConfig) {
		t.Errorf("MaxMessageSize over the limit: Check = %v, want ErrInvalidConfig", err)
	}
}

// The outbox's default payload limit is the broker's default message size, which the publisher's default Limits
// use: with defaults everywhere, a payload the outbox accepts is one the broker stores.
func TestDefaultSizesAgree(t *testing.T) {
	if outbox.DefaultMaxPayloadBytes != rocketmq.DefaultMaxMessageSize {
		t.Fatalf("outbox.DefaultMaxPayloadBytes %d, rocketmq.DefaultMaxMessageSize %d", outbox.DefaultMaxPayloadBytes,
			rocketmq.DefaultMaxMessageSize)
	}
	if rmqwire.MaxUserPropertiesLen >= outbox.DefaultMaxHeaderBytes {
		t.Logf("info: headers: the outbox stores up to %d bytes, the wire carries %d; Check bridges the gap",
			outbox.DefaultMaxHeaderBytes, rmqwire.MaxUserPropertiesLen)
	}
	p, err := rocketmq.New(rocketmq.Config{NameServers: []string{"127.0.0.1:9"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := p.Limits(); got.MaxMessageSize != rocketmq.DefaultMaxMessageSize || got.Namespace != "" {
		t.Fatalf("Publisher.Limits() = %+v", got)
	}
}

// Check is outbox.Config.Check: Enqueue refuses what it refuses, with both packages' sentinels, and writes nothing.
func TestCheckAsOutboxCheck(t *testing.T) {
	ob, err := outbox.New(outbox.Config{Dialect: dialect.Postgres, Check: rocketmq.Check})
	if err != nil {
		t.Fatal(err)
	}
	// A nil DBTX: Enqueue must fail before it touches the database.
	err = ob.Enqueue(t.Context(), nil, outbox.Message{Topic: "bad topic!", Key: "k"})
	if !errors.Is(err, outbox.ErrInvalidMessage) || !errors.Is(err, rocketmq.ErrInvalidMessage) || !strings.Contains(err.Error(), "topic") {
		t.Fatalf("Enqueue = %v, want outbox.ErrInvalidMessage and rocketmq.ErrInvalidMessage naming the topic", err)
	}
}
