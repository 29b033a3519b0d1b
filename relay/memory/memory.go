package memory

import (
	"context"
	"sync"

	"github.com/txbox/txbox/outbox"
)

// Publisher accepts records into memory. The zero value is ready to use; it is safe for concurrent use.
type Publisher struct {
	// Fail, if set, is called before a record is accepted; a non-nil error rejects it (nothing is kept).
	Fail func(r outbox.Record) error

	mu      sync.Mutex
	records []outbox.Record
	changed chan struct{} // closed and replaced whenever a record is accepted
}

// New returns an empty Publisher.
func New() *Publisher { return &Publisher{} }

// Publish keeps r, unless ctx has ended or Fail rejects it.
func (p *Publisher) Publish(ctx context.Context, r outbox.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.Fail != nil {
		if err := p.Fail(r); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records = append(p.records, r)
	if p.changed != nil {
		close(p.changed)
		p.changed = nil
	}
	return nil
}

// Records returns a copy of every accepted record, in acceptance order.
func (p *Publisher) Records() []outbox.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]outbox.Record(nil), p.records...)
}

// Len is the number of accepted records.
func (p *Publisher) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.records)
}

// Reset forgets every record.
func (p *Publisher) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records = nil
}

// WaitFor blocks until cond (called under the Publisher's lock with the records so far) returns true, or ctx
// ends.
func (p *Publisher) WaitFor(ctx context.Context, cond func(records []outbox.Record) bool) error {
	for {
		p.mu.Lock()
		if cond(p.records) {
			p.mu.Unlock()
			return nil
		}
		if p.changed == nil {
			p.changed = make(chan struct{})
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// WaitLen blocks until at least n records were accepted, or ctx ends.
func (p *Publisher) WaitLen(ctx context.Context, n int) error {
	return p.WaitFor(ctx, func(rs []outbox.Record) bool { return len(rs) >= n })
}
