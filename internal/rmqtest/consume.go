package rmqtest

import (
	"context"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Collect starts a plain push consumer (fresh group, from the first offset) on topic and sends every message it
// receives to the returned channel, acknowledging it. The consumer is shut down when the test ends. Tests use it
// to look at what a publisher wrote without txbox's consumer in between. Start it only when there is something to
// read: shutting a consumer down while its first rebalance runs trips a data race inside the client.
func (b Broker) Collect(t testing.TB, topic string, opts ...consumer.Option) <-chan *primitive.MessageExt {
	t.Helper()
	ch := make(chan *primitive.MessageExt, 10000)
	done := make(chan struct{})
	group := b.Group(t)
	all := append([]consumer.Option{
		consumer.WithNameServer(b.NameServers()),
		consumer.WithGroupName(group),
		consumer.WithInstance(Name(t, "I")),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}, opts...)
	c, err := consumer.NewPushConsumer(all...)
	if err != nil {
		t.Fatalf("rmqtest: new consumer: %v", err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		for _, m := range msgs {
			select {
			case ch <- m:
			case <-done:
				return consumer.ConsumeRetryLater, nil
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatalf("rmqtest: subscribe %s: %v", topic, err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("rmqtest: start consumer on %s: %v", topic, err)
	}
	t.Cleanup(func() {
		close(done)
		// Suspended first: a rebalance the broker triggers during Shutdown races with it inside the client
		// (rmqClient.close is read without synchronisation; apache/rocketmq-client-go#1115), and a suspended
		// consumer skips those rebalances.
		c.Suspend()
		_ = c.Shutdown()
	})
	return ch
}
