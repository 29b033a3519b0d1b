package rmqtest

import (
	"context"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// SendRaw sends msgs, in order, with a plain rocketmq-client-go producer (as producers that are not txbox do)
// and returns their message ids. The test fails unless the broker answers SendOK to each.
func (b Broker) SendRaw(t testing.TB, msgs ...*primitive.Message) []string {
	t.Helper()
	p, err := rmq.NewProducer(producer.WithNameServer(b.NameServers()), producer.WithGroupName(Name(t, "P")),
		producer.WithInstanceName(Name(t, "I")))
	if err != nil {
		t.Fatalf("rmqtest: new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("rmqtest: start producer: %v", err)
	}
	defer func() { _ = p.Shutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		res, err := p.SendSync(ctx, m)
		if err != nil || res.Status != primitive.SendOK {
			t.Fatalf("rmqtest: send to %s: %v %v", m.Topic, res, err)
		}
		ids[i] = res.MsgID
	}
	return ids
}
