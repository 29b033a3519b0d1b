package inbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/propagation"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/tracing"
)

// Process runs h for d exactly once per (consumer, key), in one transaction that also records the key:
//
//   - The key is new: h runs with the transaction; when it returns nil the transaction commits → Processed.
//   - The key is recorded: h does not run, nothing is written → Duplicate. If the recorded payload differs,
//     the error matches ErrFingerprintMismatch instead.
//   - Another delivery of the key is inside its handler right now: Process waits for it on the key's row lock,
//     then reports Duplicate (it committed) or runs h (it rolled back).
//   - h fails (error, panic, HandlerTimeout): everything is rolled back, the key included, the failure is
//     counted outside the transaction and the error is returned, so the broker redelivers. The delivery that
//     reaches MaxAttempts parks the message instead and returns Parked with a nil error; so do all later
//     deliveries of it.
//
// Deadlocks and lock timeouts are retried in a new transaction with jittered backoff, at most RetryLimit
// times, within HandlerTimeout. Results returned with a nil error can be acknowledged; Failed (with an error)
// should be redelivered. A delivery failing validation (ErrInvalidDelivery) never will succeed.
func (i *Inbox) Process(ctx context.Context, d Delivery, h Handler) (res Result, err error) {
	if len(d.Headers) > 0 {
		ctx = i.cfg.Propagator.Extract(ctx, propagation.MapCarrier(d.Headers))
	}
	ctx, span := tracing.Process(ctx, i.cfg.TracerProvider, i.cfg.Consumer, d.Topic, d.Key, d.MessageID)
	defer func() { tracing.EndProcess(span, res.String(), err) }()
	if i.cfg.OnProcess == nil {
		return i.process(ctx, d, h)
	}
	var spent time.Duration
	timed := h
	if h != nil {
		timed = func(ctx context.Context, tx *sqlx.Tx) error {
			start := time.Now()
			defer func() { spent += time.Since(start) }()
			return h(ctx, tx)
		}
	}
	res, err = i.process(ctx, d, timed)
	i.cfg.OnProcess(ProcessInfo{Consumer: i.cfg.Consumer, Key: d.Key, Result: res, Err: err, Handler: spent})
	return res, err
}

func (i *Inbox) process(ctx context.Context, d Delivery, h Handler) (Result, error) {
	if h == nil {
		return Failed, errNilHandler
	}
	if err := i.validate(d); err != nil {
		return Failed, err
	}
	sum := sha256.Sum256(d.Payload)
	fp := sum[:]

	hctx, cancel := context.WithTimeout(ctx, i.cfg.HandlerTimeout)
	defer cancel()
	var (
		res   Result
		err   error
		stage stage
	)
	for n := 0; ; n++ {
		res, stage, err = i.processOnce(ctx, hctx, d, fp, h)
		if err == nil || !isRetryable(err) || n >= i.cfg.RetryLimit {
			break
		}
		i.log.DebugContext(ctx, "inbox: retrying after a transient database error", "key", d.Key, "retry", n+1, "error", err)
		if !sleepCtx(hctx, i.backoff(n)) {
			break
		}
	}
	if err == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		// The caller gave up (shutdown): not the message's fault, not counted.
		return Failed, fmt.Errorf("inbox: process key %q: %w (%w)", d.Key, err, context.Cause(ctx))
	}
	if hctx.Err() != nil && stage >= stageHandler {
		err = fmt.Errorf("inbox: process key %q: handler did not finish within HandlerTimeout (%s): %w: %w (last error: %v)",
			d.Key, i.cfg.HandlerTimeout, ErrHandlerTimeout, context.DeadlineExceeded, err)
	} else if stage != stageHandler || isRetryable(err) || dialect.Classify(err) == dialect.KindConnection {
		// A database or transient failure, or a bad fingerprint: counting it would park healthy messages.
		return Failed, err
	}
	return i.fail(ctx, d, fp, err)
}

// stage is how far one transaction got, to tell handler failures from database failures.
type stage int

const (
	stageClaim   stage = iota // beginning the transaction or recording the key
	stageHandler              // inside the handler
	stageCommit               // committing
)

// processOnce is one transaction: record the key, run the handler, commit.
//
// Only the handler gets hctx, the HandlerTimeout context. The transaction and the claim run under the
// caller's ctx, and a context.AfterFunc rolls the transaction back when hctx ends: the key's lock is released
// at the deadline even when the handler is stuck outside the database, while the library's own statements do
// not pay for a cancellable context (lib/pq and go-sql-driver/mysql watch each such statement with a
// goroutine, measurably slower on a loaded machine).
func (i *Inbox) processOnce(ctx, hctx context.Context, d Delivery, fp []byte, h Handler) (Result, stage, error) {
	tx, err := i.db.BeginTxx(ctx, nil)
	if err != nil {
		return Failed, stageClaim, fmt.Errorf("inbox: process key %q: begin transaction: %w", d.Key, i.d.InterpretError(err))
	}
	committed := false
	defer func() {
		if !committed {
			rollback(tx)
		}
	}()
	stop := context.AfterFunc(hctx, func() { rollback(tx) })
	defer stop()
	p := store.InboxClaimParams{
		Consumer:      i.cfg.Consumer,
		Key:           d.Key,
		Fingerprint:   fp,
		ClearAttempts: d.Attempt > 0,
	}
	if i.receivedAt != nil {
		p.ReceivedAt = i.receivedAt()
	}
	claim, err := i.s.InboxClaim(ctx, tx, &p)
	if err == nil && claim.Inserted && hctx.Err() != nil {
		// The deadline passed while the claim waited for another delivery of the key: the handler never ran,
		// so this is not counted against the message.
		err = errors.New("transaction rolled back")
	}
	if err != nil {
		if hctx.Err() != nil && ctx.Err() == nil {
			return Failed, stageClaim, fmt.Errorf("inbox: process key %q: waited for the key longer than HandlerTimeout (%s): %w: %w (%v)",
				d.Key, i.cfg.HandlerTimeout, ErrHandlerTimeout, context.DeadlineExceeded, err)
		}
		return Failed, stageClaim, fmt.Errorf("inbox: process key %q: %w", d.Key, explain(err))
	}
	if !claim.Inserted {
		switch {
		case !bytes.Equal(claim.Fingerprint, fp):
			return Failed, stageClaim, &FingerprintMismatchError{Consumer: i.cfg.Consumer, Key: d.Key,
				Recorded: claim.Fingerprint, Received: fp}
		case claim.Parked:
			return Parked, stageClaim, nil
		}
		return Duplicate, stageClaim, nil
	}
	if err := runHandler(hctx, tx, h); err != nil {
		// Interpreted, so that a handler's statement that lost the connection matches dialect.ErrConnection.
		return Failed, stageHandler, fmt.Errorf("inbox: handler for key %q: %w", d.Key, i.d.InterpretError(err))
	}
	committed = true // from here on a failed Commit has already ended the transaction
	if err := tx.Commit(); err != nil {
		return Failed, stageCommit, fmt.Errorf("inbox: process key %q: commit: %w", d.Key, i.d.InterpretError(err))
	}
	return Processed, stageCommit, nil
}

// runHandler calls h, turning a panic into a *PanicError: a handler that panics on one payload is a poison
// message, retried and then parked like one that returns an error, rather than a crash of the consumer.
func runHandler(ctx context.Context, tx *sqlx.Tx, h Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	err = h(ctx, tx)
	if err == nil && ctx.Err() != nil {
		// The handler ignored its deadline; database/sql has rolled the transaction back already.
		err = context.Cause(ctx)
	}
	return err
}
