package relay

import (
	"context"

	"github.com/txbox/txbox/outbox"
)

// Publisher sends one record to the broker. It returns nil only when the broker has durably accepted the
// record (for RocketMQ: SendOK); any error leaves the row in the outbox for a later attempt, counted against
// Config.MaxAttempts unless the error wraps ErrUnavailable (the broker could not be reached: nothing counted,
// see Broker outages in the package documentation) or ErrPermanent (the row goes to the dead-letter table at
// once).
//
// It must honour ctx and return promptly once ctx ends: a batch's deadline is its lease end minus LeaseMargin,
// and the relay's promise that no row is published twice at once rests on every Publish call of the batch
// having returned by the lease end. The relay calls it concurrently for different sharding keys, never
// concurrently for one sharding key, and never twice at once for one row: not across workers, relays or
// processes, and not after a relay lost its database connection (see Guarantees in the package
// documentation).
//
// Publishing is at least once: after a lost confirm (the broker accepted, the Publisher saw an error), or when
// the relay could not record a confirm (its final statements failed, it died, its lease ended first), the same
// record is published again, once the earlier call has returned and the lease has ended, with the same Key,
// which consumers dedupe on (package inbox).
type Publisher interface {
	Publish(ctx context.Context, r outbox.Record) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, r outbox.Record) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, r outbox.Record) error { return f(ctx, r) }
