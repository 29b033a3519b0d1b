package inbox

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Park records d as a message no retry can fix, without running a handler: the key is recorded as parked and
// the message goes to the dead-letter table with its payload, headers and cause as the last error, where
// ListDead, Replay and DropDead find it; later deliveries of the key return Parked. Use it for a delivery that
// fails the same way every time (a payload that does not decode, a message type the consumer does not know,
// one that Process refused with ErrInvalidDelivery for its size) rather than failing it MaxAttempts times.
//
// A payload over MaxPayloadBytes is parked too: its first MaxPayloadBytes are stored and the dead letter is
// marked Truncated, with the payload's length and SHA-256. Other invalid deliveries (a bad key, text that is not
// UTF-8) are refused with ErrInvalidDelivery.
//
// It returns Parked, or Duplicate when the key is already recorded (processed, or parked before), in which case
// nothing is parked. It runs in a short transaction of its own, detached from ctx's cancellation like the
// counting of a failed delivery; deadlocks are retried.
func (i *Inbox) Park(ctx context.Context, d Delivery, cause error) (Result, error) {
	if cause == nil {
		return Failed, errors.New("inbox: Park needs the cause")
	}
	v := d
	v.Payload = nil // not its size: countFailure keeps at most MaxPayloadBytes of it
	if err := i.validate(v); err != nil {
		return Failed, err
	}
	sum := sha256.Sum256(d.Payload)
	attempts, parked, err := i.recordFailure(ctx, d, sum[:], errorText(cause), true)
	switch {
	case err != nil:
		return Failed, fmt.Errorf("inbox: park key %q: %w", d.Key, explain(err))
	case !parked:
		return Duplicate, nil
	}
	i.log.WarnContext(ctx, "inbox: message parked", "key", d.Key, "attempt", attempts, "error", cause)
	return Parked, nil
}
