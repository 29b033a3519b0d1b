package relay

import (
	"context"

	"github.com/txbox/txbox/outbox"
)

// Publisher sends one record to the broker. It returns nil only when the broker has durably accepted the
// record (for RocketMQ: SendOK); any error leaves the row in the outbox for a later attempt. It must honour
// ctx. The relay calls it concurrently for different sharding keys, never concurrently for one sharding key,
// and never twice at once for one row.
//
// Publishing is at least once: after a lost confirm (the broker accepted, the Publisher saw an error) or a
// relay crash the same record is published again, with the same Key, which consumers dedupe on (package
// inbox).
type Publisher interface {
	Publish(ctx context.Context, r outbox.Record) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, r outbox.Record) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, r outbox.Record) error { return f(ctx, r) }
