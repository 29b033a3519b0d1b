package rocketmq

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Batching.
//
// The relay keeps many Publish calls in flight, never two of one sharding key. Under that load the broker's
// per-request cost dominates, so concurrent Publish calls headed for the same queue are coalesced: each queue
// of a topic has a lane; a Publish call joins its queue's lane and waits, and the lane's sender takes whatever
// has gathered (at most MaxBatch messages, at most maxBatchBytes) into one batch request. Nothing waits for a
// batch to fill: an idle lane sends a lone message at once. Order per sharding key is untouched — a key's next
// message is only published after Publish returned for the previous one, so one batch never holds two messages
// of a key, and the key's queue is the one Select gives the key (selector.go).
//
// A batch succeeds or fails as a whole: every Publish in it gets the batch's error (ErrSend, ErrNotDurable)
// and the relay retries those rows.

// maxBatchBytes bounds a batch's encoded size, well below the broker's 4 MiB message limit.
const maxBatchBytes = 1 << 20

// maxBatchedBody: larger bodies are sent alone, where the client can compress them (it never compresses
// batches).
const maxBatchedBody = 64 << 10

type batchReq struct {
	msg  *primitive.Message
	size int
	done chan batchResult // buffered: the sender never blocks on a caller that gave up
	gone atomic.Bool      // the caller's ctx ended before its message was taken
}

type batchResult struct {
	res *primitive.SendResult
	err error
}

type lane struct {
	mu      sync.Mutex
	queue   []*batchReq
	sending bool
}

type laneKey struct {
	topic string
	queue queueRef
}

// batched sends msg through its queue's lane and waits for the batch's outcome: the sharding key's queue, or
// the next queue round robin of those on brokers that answer.
func (p *Publisher) batched(ctx context.Context, msg *primitive.Message, sentTopic string) (*primitive.SendResult, error) {
	var q queueRef
	var ok bool
	if k := msg.GetShardingKey(); k != "" {
		q, ok = p.sel.keyLane(sentTopic, k) // checked by send: its broker is in the route
	} else {
		q, ok = p.sel.spreadLane(sentTopic, p.spread.Add(1))
	}
	if !ok {
		return p.sendAlone(ctx, msg)
	}
	// The client sets UNIQ_KEY only on messages it sends alone; a batched message needs its own too.
	msg.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, primitive.CreateUniqID())
	msg.Queue = &primitive.MessageQueue{Topic: sentTopic, BrokerName: q.broker, QueueId: q.id}
	req := &batchReq{msg: msg, size: len(msg.Marshal()), done: make(chan batchResult, 1)}

	v, _ := p.lanes.LoadOrStore(laneKey{sentTopic, q}, &lane{})
	l := v.(*lane)
	l.mu.Lock()
	l.queue = append(l.queue, req)
	if !l.sending {
		l.sending = true
		p.senders.Add(1)
		go p.runLane(l)
	}
	l.mu.Unlock()

	select {
	case r := <-req.done:
		return r.res, r.err
	case <-ctx.Done():
		req.gone.Store(true)
		return nil, ctx.Err()
	}
}

// runLane sends the lane's gathered messages batch after batch until the lane is empty.
func (p *Publisher) runLane(l *lane) {
	defer p.senders.Done()
	for {
		l.mu.Lock()
		var batch []*batchReq
		size := 0
		rest := l.queue[:0]
		for _, r := range l.queue {
			switch {
			case r.gone.Load():
				// its caller returned already; not sending it saves a duplicate
			case len(batch) < p.cfg.MaxBatch && (len(batch) == 0 || size+r.size <= maxBatchBytes):
				batch = append(batch, r)
				size += r.size
			default:
				rest = append(rest, r)
			}
		}
		l.queue = rest
		if len(batch) == 0 {
			l.sending = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()

		msgs := make([]*primitive.Message, len(batch))
		for i, r := range batch {
			msgs[i] = r.msg
		}
		// The batch outlives any one caller's ctx: bound it by the client's own attempts instead.
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.SendTimeout*time.Duration(p.cfg.Retries+1))
		res, err := p.p.SendSync(ctx, msgs...)
		cancel()
		perm := refusal(err)
		switch {
		case perm != nil && len(batch) > 1:
			// A refusal of the whole batch says nothing about which message caused it: let each one be
			// judged alone, rather than parking its neighbours with it.
			p.sendEachAlone(batch)
			continue
		case perm != nil:
			err = perm
		}
		for _, r := range batch {
			r.done <- batchResult{res, err}
		}
	}
}

// sendEachAlone sends the messages of a refused batch one request each, to their lane's queue.
func (p *Publisher) sendEachAlone(batch []*batchReq) {
	for _, r := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.SendTimeout*time.Duration(p.cfg.Retries+1))
		res, err := p.sendAlone(ctx, r.msg)
		cancel()
		r.done <- batchResult{res, err}
	}
}
