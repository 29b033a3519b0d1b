package inbox

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned (wrapped) by this package. Match them with errors.Is; database failures additionally match
// the dialect package's sentinels (dialect.ErrSchemaMissing, dialect.ErrConnection, dialect.ErrRetryable).
var (
	// ErrInvalidConfig is returned by New for a Config it cannot use; the message names the field.
	ErrInvalidConfig = errors.New("inbox: invalid config")
	// ErrInvalidDelivery is returned by Process, before any SQL runs, for a delivery it cannot record: an
	// invalid key (the error also matches dialect.ErrInvalidKey), a payload over MaxPayloadBytes, or a topic,
	// message id or header that is not valid UTF-8 or contains NUL bytes. Nothing is written; the message
	// should go to the broker's own dead-letter queue, since redelivering it cannot help.
	ErrInvalidDelivery = errors.New("inbox: invalid delivery")
	// ErrFingerprintMismatch is returned by Process when the key is already recorded for a different payload:
	// a producer reused a business key for different content. The handler does not run. The error is a
	// *FingerprintMismatchError.
	ErrFingerprintMismatch = errors.New("inbox: key already processed with a different payload")
	// ErrHandlerTimeout is returned by Process and Replay when Config.HandlerTimeout passed before the
	// transaction committed; the transaction was rolled back. It also matches context.DeadlineExceeded.
	ErrHandlerTimeout = errors.New("inbox: handler timeout")
	// ErrHandlerPanic is returned by Process and Replay when the handler panicked; the transaction was rolled
	// back. The error is a *PanicError carrying the value and stack.
	ErrHandlerPanic = errors.New("inbox: handler panicked")
	// ErrDeadNotFound is returned by Replay, DropDead and Release when no dead letter with that id exists for the
	// inbox's consumer (for example because it was already replayed or dropped).
	ErrDeadNotFound = errors.New("inbox: dead letter not found")

	// ErrBusy is returned by Effects.Begin and Effects.Run when another run of the key holds its lease: it is
	// running the effect right now, or it died and the lease has not expired yet. Nothing ran; deliver the
	// message again later. The error is a *BusyError saying how long the lease still runs.
	ErrBusy = errors.New("inbox: effect is running elsewhere")
	// ErrLeaseLost is returned by Claim.Complete and Claim.Release (and so by Effects.Run) when the claim's lease
	// was taken over by another run after it expired (or the record was parked or purged meanwhile): nothing was
	// changed, and the run that holds the record now completes it.
	ErrLeaseLost = errors.New("inbox: effect lease lost")
	// ErrInvalidResult is returned by Claim.Complete for a result over EffectsConfig.MaxResultBytes. Nothing was
	// written; the claim still holds the lease.
	ErrInvalidResult = errors.New("inbox: invalid effect result")
	// ErrTruncated is returned by Replay and Release for a dead letter that was cut to be stored
	// (DeadLetter.Truncated): running or sending it again from what is left would be wrong. Nothing changes;
	// DropDead discards it.
	ErrTruncated = errors.New("inbox: dead letter was cut when parked")
)

// BusyError reports a key whose effect another run holds the lease of. It matches ErrBusy.
type BusyError struct {
	Consumer string
	Key      string
	// RetryAfter is the time left on the other run's lease, by the store's clock: the key can be taken over
	// after it, if that run has not completed or released it by then.
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("inbox: consumer %q: the effect of key %q is running elsewhere (lease ends in %s)", e.Consumer,
		e.Key, e.RetryAfter.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// FingerprintMismatchError reports a key recorded earlier for a different payload. It matches
// ErrFingerprintMismatch.
type FingerprintMismatchError struct {
	Consumer string
	Key      string
	Recorded []byte // SHA-256 of the payload processed first
	Received []byte // SHA-256 of this delivery's payload
}

func (e *FingerprintMismatchError) Error() string {
	return fmt.Sprintf("inbox: consumer %q already processed key %q with a different payload "+
		"(recorded sha256 %x, received %x); the producer reused a business key", e.Consumer, e.Key,
		e.Recorded, e.Received)
}

// Is makes errors.Is(err, ErrFingerprintMismatch) true.
func (e *FingerprintMismatchError) Is(target error) bool { return target == ErrFingerprintMismatch }

// PanicError is a handler panic turned into an error, so that the message is retried and, if it keeps
// panicking, parked like any other poison message instead of crashing the consumer. It matches
// ErrHandlerPanic.
type PanicError struct {
	Value any    // what the handler panicked with
	Stack []byte // the goroutine's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("inbox: handler panicked: %v", e.Value) }

// Is makes errors.Is(err, ErrHandlerPanic) true.
func (e *PanicError) Is(target error) bool { return target == ErrHandlerPanic }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}
