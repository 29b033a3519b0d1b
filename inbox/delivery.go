package inbox

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/txbox/txbox/dialect"
)

// Delivery is one message as the broker delivered it.
type Delivery struct {
	// Key is the message's business key (see Key): the same for every delivery of the same logical message,
	// including the producer's retries. Required; at most dialect.MaxKeyBytes bytes of UTF-8, compared byte
	// for byte.
	Key string
	// Payload is the message body. Its SHA-256 is recorded with the key, so that a later delivery of the same
	// key with a different body is reported (ErrFingerprintMismatch) instead of being skipped silently.
	Payload []byte
	// Headers are the message's properties; they are stored with a parked message. Not part of the
	// fingerprint (brokers add redelivery counters to them).
	Headers map[string]string

	// Broker metadata, stored with a parked message. Optional.
	Topic     string // e.g. RocketMQ topic
	MessageID string // e.g. RocketMQ MsgId
	// Attempt is the broker's redelivery count: 0 for the first delivery (RocketMQ's ReconsumeTimes). When it
	// is above 0 a successful Process also clears the key's failure counter in the same transaction; counters
	// left behind otherwise are removed by Purge.
	Attempt int
}

// Handler does a delivery's work in tx, the transaction that records its key. It must not commit or roll back
// tx, and it should pass ctx to every statement: ctx ends when Config.HandlerTimeout passes. Returning an
// error rolls everything back, the key included. A handler can run more than once for one delivery (after a
// deadlock Process retries in a new transaction), so effects outside tx must be idempotent themselves.
type Handler func(ctx context.Context, tx *sqlx.Tx) error

// ReplayHandler handles a parked message in Replay; d is rebuilt from the dead-letter row.
type ReplayHandler func(ctx context.Context, tx *sqlx.Tx, d Delivery) error

// Result is what Process did with a delivery. Every result returned with a nil error may be acknowledged to
// the broker; Failed always comes with an error and means nothing was committed (redeliver).
type Result int

const (
	// Failed: nothing was committed; the error says why. The broker should redeliver.
	Failed Result = iota
	// Processed: the handler ran and its transaction, which recorded the key, committed.
	Processed
	// Duplicate: the key was already recorded; the handler did not run and nothing was written.
	Duplicate
	// Parked: the message failed MaxAttempts times and sits in the dead-letter table (now, or since an
	// earlier delivery); the handler did not run. Acknowledge it; use ListDead, Replay and DropDead.
	Parked
)

func (r Result) String() string {
	switch r {
	case Failed:
		return "failed"
	case Processed:
		return "processed"
	case Duplicate:
		return "duplicate"
	case Parked:
		return "parked"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// validate checks what would otherwise reach the database (and could be truncated or rejected there).
func (i *Inbox) validate(d Delivery) error { return validateDelivery(d, i.cfg.MaxPayloadBytes) }

// validateDelivery checks d for a store, with payloads up to maxPayload bytes.
func validateDelivery(d Delivery, maxPayload int) error {
	if err := dialect.CheckKey(d.Key); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidDelivery, err)
	}
	if len(d.Payload) > maxPayload {
		return fmt.Errorf("%w: payload is %d bytes, more than MaxPayloadBytes (%d)", ErrInvalidDelivery, len(d.Payload), maxPayload)
	}
	if d.Topic != "" {
		if err := dialect.CheckText("topic", d.Topic, dialect.MaxTopicBytes, ErrInvalidDelivery); err != nil {
			return fmt.Errorf("inbox: %w", err)
		}
	}
	if d.MessageID != "" {
		if err := dialect.CheckText("message id", d.MessageID, dialect.MaxTopicBytes, ErrInvalidDelivery); err != nil {
			return fmt.Errorf("inbox: %w", err)
		}
	}
	for k, v := range d.Headers {
		if !cleanText(k) || !cleanText(v) {
			return fmt.Errorf("%w: header %q is not valid UTF-8 without NUL bytes", ErrInvalidDelivery, k)
		}
	}
	return nil
}

func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
