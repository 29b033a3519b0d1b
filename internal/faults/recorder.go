package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// SeqHeader numbers the messages of one sharding key in enqueue order (0, 1, 2, ...), so that a Recorder can
// check their order.
const SeqHeader = "faults-seq"

// Recorder is a relay.Publisher that records every call, for the invariants a fault scenario checks: rows
// published twice at once, publishes of one sharding key that overlap, sharding keys out of order, and how
// often each key was published (duplicates, by cause). It passes records to Next (nil: accept them) after a
// delay drawn from [MinDelay, MaxDelay] (a slow broker). It is safe for concurrent use.
type Recorder struct {
	Next               relay.Publisher
	MinDelay, MaxDelay time.Duration
	// Hook, if set, runs inside every recorded call before the delay (a test stalls some calls with it).
	Hook func(ctx context.Context, r outbox.Record)

	mu        sync.Mutex
	inflight  map[int64]int  // by outbox id: calls in Publish
	keyFlight map[string]int // by sharding key: calls in Publish
	concRows  int            // calls that began while another call of the same row was in Publish
	concKeys  int            // calls that began while another call of the same sharding key was in Publish
	calls     int
	accepted  map[string]int // by Key: calls that returned nil
	maxSeq    map[string]int // by sharding key: highest SeqHeader accepted
	order     []string       // order violations
	changed   chan struct{}
}

// NewRecorder returns a Recorder passing records to next (nil: accept every record).
func NewRecorder(next relay.Publisher) *Recorder {
	return &Recorder{Next: next, inflight: map[int64]int{}, keyFlight: map[string]int{}, accepted: map[string]int{},
		maxSeq: map[string]int{}}
}

// Publish records the call and passes it on.
func (r *Recorder) Publish(ctx context.Context, rec outbox.Record) error {
	r.mu.Lock()
	r.calls++
	if r.inflight[rec.ID] > 0 {
		r.concRows++
	}
	r.inflight[rec.ID]++
	if rec.ShardingKey != "" {
		if r.keyFlight[rec.ShardingKey] > 0 {
			r.concKeys++
		}
		r.keyFlight[rec.ShardingKey]++
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inflight[rec.ID]--
		if rec.ShardingKey != "" {
			r.keyFlight[rec.ShardingKey]--
		}
		r.mu.Unlock()
	}()
	if r.Hook != nil {
		r.Hook(ctx, rec)
	}
	if d := r.delay(); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("faults: recorder: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
	err := ctx.Err()
	if r.Next != nil {
		err = r.Next.Publish(ctx, rec)
	}
	if err == nil {
		r.accept(rec)
	}
	return err
}

func (r *Recorder) delay() time.Duration {
	if r.MaxDelay <= r.MinDelay {
		return r.MinDelay
	}
	return r.MinDelay + rand.N(r.MaxDelay-r.MinDelay)
}

func (r *Recorder) accept(rec outbox.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted[rec.Key]++
	if rec.ShardingKey != "" {
		if seq, err := strconv.Atoi(rec.Headers[SeqHeader]); err == nil {
			last, seen := r.maxSeq[rec.ShardingKey]
			if !seen {
				last = -1
			}
			if seq > last+1 {
				r.order = append(r.order, fmt.Sprintf("sharding key %s: seq %d published after %d", rec.ShardingKey, seq, last))
			}
			r.maxSeq[rec.ShardingKey] = max(last, seq)
		}
	}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// Accepted is how many times key was accepted.
func (r *Recorder) Accepted(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted[key]
}

// Distinct is how many different keys were accepted.
func (r *Recorder) Distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

// WaitDistinct waits until n different keys were accepted or ctx ends.
func (r *Recorder) WaitDistinct(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		got := len(r.accepted)
		if got >= n {
			r.mu.Unlock()
			return nil
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("faults: %d of %d keys published: %w", got, n, ctx.Err())
		}
	}
}

// PublishReport is what a Recorder saw, checked against the keys that had to be published.
type PublishReport struct {
	Calls int // Publish calls
	Lost  int // keys never confirmed
	Extra int // confirmed keys that were not expected
	// Duplicates are confirmed publishes of a key beyond its first: each time the relay had the confirm but
	// could not record it (its final statements failed with the database or the connection, its lease ended,
	// or it was killed), so the row was published again after its lease.
	Duplicates     int
	ConcurrentRows int // calls that overlapped another call of the same row
	ConcurrentKeys int // calls that overlapped another call of the same sharding key
	OrderErrors    []string
	LostKeys       []string // up to 10
}

// Report checks what was published against keys.
func (r *Recorder) Report(keys []string) PublishReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := PublishReport{Calls: r.calls, ConcurrentRows: r.concRows, ConcurrentKeys: r.concKeys,
		OrderErrors: append([]string(nil), r.order...)}
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
		n := r.accepted[k]
		if n == 0 {
			rep.Lost++
			if len(rep.LostKeys) < 10 {
				rep.LostKeys = append(rep.LostKeys, k)
			}
			continue
		}
		rep.Duplicates += n - 1
	}
	for k := range r.accepted {
		if !want[k] {
			rep.Extra++
		}
	}
	sort.Strings(rep.LostKeys)
	return rep
}
