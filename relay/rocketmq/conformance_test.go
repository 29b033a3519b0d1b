package rocketmq_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/internal/publishertest"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
	"github.com/txbox/txbox/rmqwire"
)

// TestConformance runs the relay's Publisher conformance suite against the real broker. The reader is a plain
// client consumer; messages come back sorted by (queue, queue offset), which is the broker's order within each
// queue and so, through the sharding-key queue selector, per sharding key.
func TestConformance(t *testing.T) {
	b := rmqtest.Get(t)
	outer := t
	publishertest.Run(t, func(t *testing.T) publishertest.Harness {
		topic := b.Topic(t, 4)
		var (
			mu   sync.Mutex
			ch   <-chan *primitive.MessageExt
			seen []*primitive.MessageExt
		)
		receive := func(ctx context.Context, n int) ([]publishertest.Received, error) {
			mu.Lock()
			defer mu.Unlock()
			if ch == nil {
				// From the first offset: nothing published before is missed. Shut down with the outer test,
				// not right after starting: a shutdown racing the broker's group-change notification that
				// follows a start trips the client's own data race (apache/rocketmq-client-go#1115).
				ch = b.Collect(outer, topic)
			}
			for len(seen) < n {
				select {
				case m := <-ch:
					seen = append(seen, m)
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			sorted := append([]*primitive.MessageExt(nil), seen...)
			sort.SliceStable(sorted, func(i, j int) bool {
				if sorted[i].Queue.QueueId != sorted[j].Queue.QueueId {
					return sorted[i].Queue.QueueId < sorted[j].Queue.QueueId
				}
				return sorted[i].QueueOffset < sorted[j].QueueOffset
			})
			out := make([]publishertest.Received, len(sorted))
			for i, m := range sorted {
				out[i] = publishertest.Received{Topic: m.Topic, Key: m.GetProperty(rmqwire.PropKey), Tag: m.GetTags(),
					Payload: rmqwire.Body(m.GetProperties(), m.Body), Headers: rmqwire.Headers(m.GetProperties())}
			}
			return out, nil
		}
		return publishertest.Harness{
			Publisher: newPublisher(t, b),
			Topic:     topic,
			Receive:   receive,
			Broken: func(t *testing.T) relay.Publisher {
				// Nothing listens on port 1: no route can be fetched, so nothing can be accepted.
				p, err := rocketmq.New(rocketmq.Config{NameServers: []string{"127.0.0.1:1"},
					SendTimeout: 500 * time.Millisecond, Retries: -1})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = p.Close() })
				return p
			},
		}
	})
}
