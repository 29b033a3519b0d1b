package rocketmq

import (
	"fmt"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// route is a topic route as the client builds it: brokers in name order, queue ids 0..n-1, new values each time.
func route(topic string, brokers map[string]int, names ...string) []*primitive.MessageQueue {
	var out []*primitive.MessageQueue
	for _, b := range names {
		for i := range brokers[b] {
			out = append(out, &primitive.MessageQueue{Topic: topic, BrokerName: b, QueueId: i})
		}
	}
	return out
}

func keyed(topic, key string) *primitive.Message {
	m := primitive.NewMessage(topic, nil)
	m.WithShardingKey(key)
	return m
}

// With the route as it comes, a key goes where the client's own hash selector sends it.
func TestSelectorMatchesTheClientsHashSelector(t *testing.T) {
	hash := producer.NewHashQueueSelector()
	for _, brokers := range []map[string]int{{"broker-a": 4}, {"broker-a": 4, "broker-b": 4}, {"broker-a": 3, "broker-b": 5}} {
		s := newSelector()
		names := []string{"broker-a", "broker-b"}[:len(brokers)]
		mqs := route("t", brokers, names...)
		for i := range 500 {
			m := keyed("t", fmt.Sprintf("k%d", i))
			if got, want := s.Select(m, mqs, ""), hash.Select(m, mqs, ""); got != want {
				t.Fatalf("%v: key k%d to %v, the client's hash selector to %v", brokers, i, got, want)
			}
		}
	}
}

// A broker leaves the route: its keys get no queue (nil: not sent elsewhere), the other keys keep theirs, and
// messages without a key go to the brokers that are left. It comes back: every key has its old queue again.
func TestSelectorKeepsKeysOnTheirQueueWhileABrokerIsGone(t *testing.T) {
	s := newSelector()
	both := map[string]int{"broker-a": 4, "broker-b": 4}
	before := map[string]queueRef{}
	full := route("t", both, "broker-a", "broker-b")
	for i := range 200 {
		k := fmt.Sprintf("k%d", i)
		before[k] = refOf(s.Select(keyed("t", k), full, ""))
	}
	onlyB := route("t", both, "broker-b")
	lost := 0
	for k, was := range before {
		q := s.Select(keyed("t", k), onlyB, "")
		switch {
		case was.broker == "broker-a" && q != nil:
			t.Fatalf("key %s of broker-a sent to %v while broker-a is gone", k, q)
		case was.broker == "broker-a":
			lost++
			if r, ok := s.keyLane("t", k); ok || r != was {
				t.Errorf("keyLane(%s) = %v, %v; want %v, false", k, r, ok, was)
			}
		case q == nil || refOf(q) != was:
			t.Fatalf("key %s of broker-b moved from %v to %v", k, was, q)
		}
	}
	if lost == 0 {
		t.Fatal("no key of broker-a among 200: the test proves nothing")
	}
	for range 100 {
		if q := s.Select(primitive.NewMessage("t", nil), onlyB, ""); q.BrokerName != "broker-b" {
			t.Fatalf("a message without a key sent to %v, which is not in the route", q)
		}
	}
	back := route("t", both, "broker-a", "broker-b") // new values, as after a route update
	for k, was := range before {
		if q := s.Select(keyed("t", k), back, ""); q == nil || refOf(q) != was {
			t.Fatalf("key %s on %v after broker-a came back, was %v", k, q, was)
		}
	}
}

// A broker still in the route with fewer queues (the topic's queue count was lowered): its removed queues leave
// the mapping, and every key has a queue again.
func TestSelectorDropsQueuesALiveBrokerNoLongerHas(t *testing.T) {
	s := newSelector()
	s.Select(keyed("t", "k"), route("t", map[string]int{"broker-a": 8}, "broker-a"), "")
	fewer := route("t", map[string]int{"broker-a": 2}, "broker-a")
	for i := range 100 {
		if q := s.Select(keyed("t", fmt.Sprintf("k%d", i)), fewer, ""); q == nil {
			t.Fatalf("key k%d has no queue after the queue count went from 8 to 2", i)
		}
	}
}

// After a failed attempt on a broker (the client retries with it as the last broker), messages without a key
// avoid it; lanes without a key too. Keyed messages never move.
func TestSelectorAvoidsABrokerThatJustFailed(t *testing.T) {
	s := newSelector()
	mqs := route("t", map[string]int{"broker-a": 4, "broker-b": 4}, "broker-a", "broker-b")
	var aKey string
	for i := 0; aKey == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		if s.Select(keyed("t", k), mqs, "").BrokerName == "broker-a" {
			aKey = k
		}
	}
	if q := s.Select(primitive.NewMessage("t", nil), mqs, "broker-a"); q.BrokerName != "broker-b" {
		t.Fatalf("the retry after a failure on broker-a went to %v", q)
	}
	for i := range 100 {
		if q := s.Select(primitive.NewMessage("t", nil), mqs, ""); q.BrokerName != "broker-b" {
			t.Fatalf("a message without a key went to broker-a just after a failure there: %v", q)
		}
		if r, _ := s.spreadLane("t", uint64(i)); r.broker != "broker-b" {
			t.Fatalf("a lane without a key on broker-a just after a failure there: %v", r)
		}
	}
	if q := s.Select(keyed("t", aKey), mqs, "broker-a"); q.BrokerName != "broker-a" {
		t.Fatalf("keyed message moved off its queue after a failure: %v", q)
	}
}
