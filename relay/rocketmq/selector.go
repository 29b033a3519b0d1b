package rocketmq

import (
	"cmp"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Queue selection.
//
// A sharding key's messages must all go to one queue, in order. The client's hash selector takes FNV-1a of the
// key modulo the number of queues in the topic's route, and the route shrinks when a broker of the cluster is
// lost (the name server drops it as soon as its connection closes; the client reads routes every 30s): every
// key would then hash onto another queue, on the brokers that are left, while its earlier messages wait on the
// lost broker's queues, and a consumer would see the key's later messages first.
//
// The selector therefore maps keys onto every queue it has seen in the topic's routes, sorted by broker and
// queue id: the queues of a broker that left the route stay in the mapping, so a key keeps its queue, and while
// that queue's broker is gone the key's messages are not sent at all (Publish fails with ErrQueueUnavailable
// and the relay publishes them again later, in order) until the broker is back in the route. Queues a broker
// still in the route no longer has (the topic's queue count was lowered) leave the mapping, as do brokers only
// when the Publisher restarts: a Publisher started while a broker is gone maps keys over the brokers it sees,
// like any change of the queue count (documented in the package doc).
//
// Messages without a sharding key go to a random queue of the route, avoiding for suspectFor a broker the client
// just failed to reach (it passes the last broker of a failed attempt when it retries), so that they keep
// flowing through the brokers that are left from the first failure on, not only once the route is refreshed.

// suspectFor is how long messages without a sharding key avoid a broker after a send to it failed.
const suspectFor = 5 * time.Second

// queueRef names a queue across routes: the client makes new *MessageQueue values at every route update.
type queueRef struct {
	broker string
	id     int
}

func refOf(q *primitive.MessageQueue) queueRef { return queueRef{q.BrokerName, q.QueueId} }

// topicQueues is one topic as the selector maps it.
type topicQueues struct {
	route []*primitive.MessageQueue // the route the mapping was last made from
	all   []queueRef                // every queue seen, sorted: what keys hash onto
	live  map[queueRef]*primitive.MessageQueue
}

// selector is the producer's queue selector (producer.QueueSelector) and the publisher's view of each topic's
// queues (lanes, see batch.go).
type selector struct {
	mu      sync.Mutex
	topics  map[string]*topicQueues // by topic as sent (with namespace)
	suspect map[string]time.Time    // broker → until when unkeyed messages avoid it
}

func newSelector() *selector {
	return &selector{topics: map[string]*topicQueues{}, suspect: map[string]time.Time{}}
}

// Select picks the queue of msg from the route mqs: a lane's queue (msg.Queue, set by batched), the sharding
// key's queue, or a random one. It returns nil, which the client reports as "route info not found", when the
// queue a lane or a key needs is on a broker that left the route.
func (s *selector) Select(msg *primitive.Message, mqs []*primitive.MessageQueue, lastBroker string) *primitive.MessageQueue {
	if len(mqs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if lastBroker != "" {
		s.suspect[lastBroker] = now.Add(suspectFor)
	}
	t := s.update(msg.Topic, mqs)
	switch {
	case msg.Queue != nil:
		return t.live[refOf(msg.Queue)]
	case msg.GetShardingKey() != "":
		return t.live[t.keyQueue(msg.GetShardingKey())]
	}
	return s.pick(t, now)
}

// update makes t's mapping current with the route mqs. Called with s.mu held.
func (s *selector) update(topic string, mqs []*primitive.MessageQueue) *topicQueues {
	t := s.topics[topic]
	if t == nil {
		t = &topicQueues{}
		s.topics[topic] = t
	}
	if len(t.route) == len(mqs) && len(mqs) > 0 && &t.route[0] == &mqs[0] {
		return t // the same route as last time
	}
	t.route = mqs
	t.live = make(map[queueRef]*primitive.MessageQueue, len(mqs))
	brokers := map[string]bool{}
	for _, q := range mqs {
		t.live[refOf(q)] = q
		brokers[q.BrokerName] = true
	}
	// Keep the queues of brokers that left the route; drop those a broker in the route no longer has.
	all := slices.DeleteFunc(slices.Clone(t.all), func(r queueRef) bool { return brokers[r.broker] })
	for r := range t.live {
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b queueRef) int { return cmp.Or(cmp.Compare(a.broker, b.broker), cmp.Compare(a.id, b.id)) })
	t.all = all
	return t
}

// keyQueue is the queue of a sharding key: FNV-1a of the key modulo the number of queues seen.
func (t *topicQueues) keyQueue(key string) queueRef {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return t.all[int(h.Sum32()%uint32(len(t.all)))]
}

// pick returns a random queue of the route, on a broker no send failed on lately if there is one. Called with
// s.mu held.
func (s *selector) pick(t *topicQueues, now time.Time) *primitive.MessageQueue {
	ok := s.usable(t, now)
	return ok[rand.IntN(len(ok))]
}

// usable returns the route's queues on brokers no send failed on lately (the whole route when every broker
// failed). Called with s.mu held.
func (s *selector) usable(t *topicQueues, now time.Time) []*primitive.MessageQueue {
	ok := make([]*primitive.MessageQueue, 0, len(t.route))
	for _, q := range t.route {
		if !now.Before(s.suspect[q.BrokerName]) {
			ok = append(ok, q)
		}
	}
	if len(ok) == 0 {
		return t.route
	}
	return ok
}

// known reports whether the selector has seen topic's route (batching needs it).
func (s *selector) known(topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.topics[topic] != nil && len(s.topics[topic].route) > 0
}

// keyLane returns the queue of a sharding key and whether its broker is in the route.
func (s *selector) keyLane(topic, key string) (queueRef, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t == nil || len(t.all) == 0 {
		return queueRef{}, false
	}
	r := t.keyQueue(key)
	return r, t.live[r] != nil
}

// spreadLane returns the n-th queue, round robin, of those in the route on brokers no send failed on lately.
func (s *selector) spreadLane(topic string, n uint64) (queueRef, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topic]
	if t == nil || len(t.route) == 0 {
		return queueRef{}, false
	}
	ok := s.usable(t, time.Now())
	return refOf(ok[n%uint64(len(ok))]), true
}
