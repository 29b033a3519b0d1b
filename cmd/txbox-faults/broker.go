package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/internal/rmqclient"
)

// createTopic creates topic on the broker and waits until the name server routes it.
func createTopic(ctx context.Context, namesrv, broker, topic string, queues int) error {
	newAdmin := func() (admin.Admin, error) {
		return admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{namesrv})))
	}
	a, err := newAdmin()
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	err = a.CreateTopic(ctx, admin.WithTopicCreate(topic), admin.WithBrokerAddrCreate(broker),
		admin.WithReadQueueNums(queues), admin.WithWriteQueueNums(queues))
	_ = a.Close()
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		// A new client each time: the client caches the first route it sees.
		a, err := newAdmin()
		if err != nil {
			return fmt.Errorf("admin client: %w", err)
		}
		mqs, err := a.FetchPublishMessageQueues(ctx, topic)
		_ = a.Close()
		if err == nil && len(mqs) == queues {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s has no route: %w (last: %v)", topic, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// collector records the messages a push consumer receives: for each business key, the distinct messages
// stored under it (by message id: a redelivery to the consumer is the same message, a second publish is another).
type collector struct {
	c rmq.PushConsumer

	mu      sync.Mutex
	byKey   map[string]map[string]bool
	changed chan struct{}
}

// collect starts a push consumer (fresh group, from the first offset) on topic.
func collect(namesrv, topic string) (*collector, error) {
	col := &collector{byKey: map[string]map[string]bool{}}
	c, err := consumer.NewPushConsumer(consumer.WithNameServer([]string{namesrv}),
		consumer.WithGroupName(fmt.Sprintf("faults-%d", time.Now().UnixNano())),
		consumer.WithInstance(rmqclient.UniqueInstanceName("faults")),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset))
	if err != nil {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	err = c.Subscribe(topic, consumer.MessageSelector{}, func(_ context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, m := range msgs {
			ids := col.byKey[m.GetKeys()]
			if ids == nil {
				ids = map[string]bool{}
				col.byKey[m.GetKeys()] = ids
			}
			ids[m.MsgId] = true
		}
		if col.changed != nil {
			close(col.changed)
			col.changed = nil
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start consumer: %w", err)
	}
	col.c = c
	return col, nil
}

// waitKeys waits until every key was received or ctx ends.
func (col *collector) waitKeys(ctx context.Context, keys []string) {
	for {
		col.mu.Lock()
		missing := 0
		for _, k := range keys {
			if len(col.byKey[k]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			col.mu.Unlock()
			return
		}
		if col.changed == nil {
			col.changed = make(chan struct{})
		}
		ch := col.changed
		col.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// tally returns the keys never received (up to 10 named), how many were, and how many extra messages were
// stored under them (published more than once).
func (col *collector) tally(keys []string) (lost int, lostKeys []string, got, dups int) {
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, k := range keys {
		switch n := len(col.byKey[k]); {
		case n == 0:
			lost++
			if len(lostKeys) < 10 {
				lostKeys = append(lostKeys, k)
			}
		default:
			got++
			dups += n - 1
		}
	}
	return lost, lostKeys, got, dups
}

func (col *collector) close() {
	// Suspended first: a rebalance during Shutdown races inside the client (apache/rocketmq-client-go#1115).
	col.c.Suspend()
	_ = col.c.Shutdown()
}
