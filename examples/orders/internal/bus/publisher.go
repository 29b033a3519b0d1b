package bus

import (
	"context"

	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// Instrument wraps a publisher to count what it publishes into stats and to publish the messages Faults
// chooses for Resend twice, as a producer does when the broker's confirm is lost and it sends again. The copy
// is a new broker message (a new message id) with the same business key and payload: only the key can tell
// them apart.
func Instrument(p relay.Publisher, f Faults, stats *Stats) relay.Publisher {
	return instrumented{p: p, f: f, stats: stats}
}

type instrumented struct {
	p     relay.Publisher
	f     Faults
	stats *Stats
}

func (i instrumented) Publish(ctx context.Context, rec outbox.Record) error {
	if err := i.p.Publish(ctx, rec); err != nil {
		return err
	}
	i.stats.published.Add(1)
	if i.f.For(rec.Key) != Resend {
		return nil
	}
	// A failure here is the relay's to retry like any other: it publishes the row again (a third copy at
	// worst), which the consumer's inbox absorbs too.
	if err := i.p.Publish(ctx, rec); err != nil {
		return err
	}
	i.stats.published.Add(1)
	i.stats.resent.Add(1)
	return nil
}
