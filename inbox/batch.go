package inbox

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/tracing"
)

// BatchHandler does the work of one delivery of a batch in tx, the batch's transaction. It must not commit or
// roll back tx, and it should pass ctx to every statement. Returning an error (or panicking) rolls back the
// delivery's own writes and its key, nothing else. Like a Handler it can run more than once for one delivery.
type BatchHandler func(ctx context.Context, tx *sqlx.Tx, d Delivery) error

// BatchResult is the outcome of one delivery of ProcessBatch, with the meaning Process gives to its results:
// Failed always comes with Err and means nothing of the delivery was committed (redeliver it); every other
// Result comes with a nil Err and may be acknowledged.
type BatchResult struct {
	Result Result
	Err    error
}

// ProcessBatch runs h for each of ds exactly once per (consumer, key), like Process, but in one transaction
// with one commit for the whole batch, which is what makes it faster than a Process per delivery when commits
// are durable. Each delivery's key and its handler's writes sit under a savepoint of their own:
//
//   - A handler that fails (error, panic) rolls back to its savepoint: its own writes and its key are undone,
//     the other deliveries go on, and only its result is Failed (the failure is counted, and the message is
//     parked at MaxAttempts, as with Process).
//   - A key already recorded is a Duplicate (Parked, or a fingerprint mismatch, as with Process); a key that
//     appears twice in ds runs the handler once, the second delivery is a Duplicate of the first.
//   - A deadlock or lock timeout anywhere rolls back the whole transaction and the batch is run again (at most
//     RetryLimit times, within HandlerTimeout), handlers included.
//   - When the commit fails, or the database fails otherwise, or HandlerTimeout passes (it bounds the whole
//     batch), nothing was committed: every delivery is Failed with that error, and only the handlers that
//     failed (or overran the deadline) are counted.
//
// Keys are claimed in byte order, whatever the order of ds, so that concurrent batches of overlapping keys
// wait for each other instead of deadlocking; handlers run in that order too. The results are in the order of
// ds. An invalid delivery (ErrInvalidDelivery) is Failed before anything runs and does not affect the others.
//
// Every delivery holds its key's row lock until the batch commits, so a redelivery of one of its keys waits for
// the whole batch. On PostgreSQL each delivery that writes uses a subtransaction: keep batches at 64 deliveries
// or fewer, past which PostgreSQL's snapshots of every session slow down (subtransaction cache overflow).
func (i *Inbox) ProcessBatch(ctx context.Context, ds []Delivery, h BatchHandler) []BatchResult {
	out := make([]BatchResult, len(ds))
	if h == nil {
		for n := range out {
			out[n] = BatchResult{Failed, errNilHandler}
		}
		return out
	}
	b := &batch{i: i, ds: ds, h: h, out: out, fps: make([][]byte, len(ds)), spans: make([]trace.Span, len(ds)),
		spent: make([]time.Duration, len(ds))}
	for n, d := range ds {
		if len(d.Headers) > 0 {
			ctx := i.cfg.Propagator.Extract(ctx, propagation.MapCarrier(d.Headers))
			_, b.spans[n] = tracing.Process(ctx, i.cfg.TracerProvider, i.cfg.Consumer, d.Topic, d.Key, d.MessageID)
		} else {
			_, b.spans[n] = tracing.Process(ctx, i.cfg.TracerProvider, i.cfg.Consumer, d.Topic, d.Key, d.MessageID)
		}
		if err := i.validate(d); err != nil {
			out[n] = BatchResult{Failed, err}
			continue
		}
		sum := sha256.Sum256(d.Payload)
		b.fps[n] = sum[:]
		b.order = append(b.order, n)
	}
	// Stable: deliveries of one key stay in the order of ds, the first one runs the handler.
	slices.SortStableFunc(b.order, func(x, y int) int { return cmp.Compare(ds[x].Key, ds[y].Key) })
	b.run(ctx)
	for n, span := range b.spans {
		tracing.EndProcess(span, out[n].Result.String(), out[n].Err)
		if i.cfg.OnProcess != nil {
			i.cfg.OnProcess(ProcessInfo{Consumer: i.cfg.Consumer, Key: ds[n].Key, Result: out[n].Result, Err: out[n].Err,
				Handler: b.spent[n]})
		}
	}
	return out
}

// batch is one ProcessBatch call: the valid deliveries (order, by key) and what became of each.
type batch struct {
	i     *Inbox
	ds    []Delivery
	h     BatchHandler
	out   []BatchResult
	fps   [][]byte
	order []int
	spans []trace.Span
	spent []time.Duration // in the handler, over every attempt
	// failed holds the handler failures of the last attempt, to count once the batch is over.
	failed map[int]error
}

func (b *batch) run(ctx context.Context) {
	if len(b.order) == 0 {
		return
	}
	i := b.i
	hctx, cancel := context.WithTimeout(ctx, i.cfg.HandlerTimeout)
	defer cancel()
	var err error
	for n := 0; ; n++ {
		err = b.once(ctx, hctx)
		if err == nil || !isRetryable(err) || n >= i.cfg.RetryLimit {
			break
		}
		i.log.DebugContext(ctx, "inbox: retrying a batch after a transient database error", "deliveries", len(b.order),
			"retry", n+1, "error", err)
		if !sleepCtx(hctx, i.backoff(n)) {
			break
		}
	}
	if err != nil {
		// Nothing was committed. The handlers that failed (or overran the deadline) are counted; the others'
		// deliveries failed through no fault of their own.
		switch {
		case ctx.Err() != nil:
			err = fmt.Errorf("inbox: process batch: %w (%w)", err, context.Cause(ctx))
		case hctx.Err() != nil:
			err = fmt.Errorf("inbox: process batch: not finished within HandlerTimeout (%s): %w: %w (last error: %v)",
				i.cfg.HandlerTimeout, ErrHandlerTimeout, context.DeadlineExceeded, err)
		default:
			err = fmt.Errorf("inbox: process batch: %w", err)
		}
		for _, n := range b.order {
			b.out[n] = BatchResult{Failed, err}
		}
	}
	if ctx.Err() != nil {
		return // the caller gave up (shutdown): not the messages' fault, not counted
	}
	for n, herr := range b.failed {
		b.out[n].Result, b.out[n].Err = i.fail(ctx, b.ds[n], b.fps[n], herr)
	}
}

// once is one transaction over the batch. It returns nil when the batch committed (b.out and b.failed then
// hold every delivery's outcome) and an error when nothing was committed.
func (b *batch) once(ctx, hctx context.Context) error {
	i := b.i
	b.failed = map[int]error{}
	tx, err := i.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", i.d.InterpretError(err))
	}
	committed := false
	defer func() {
		if !committed {
			rollback(tx)
		}
	}()
	stop := context.AfterFunc(hctx, func() { rollback(tx) })
	defer stop()
	for _, n := range b.order {
		d := b.ds[n]
		if err := i.s.InboxSavepoint(ctx, tx); err != nil {
			return b.dbError(hctx, err)
		}
		claim, err := i.s.InboxClaim(ctx, tx, &store.InboxClaimParams{
			Consumer: i.cfg.Consumer, Key: d.Key, Fingerprint: b.fps[n], ClearAttempts: d.Attempt > 0,
		})
		if err != nil {
			return b.dbError(hctx, fmt.Errorf("key %q: %w", d.Key, explain(err)))
		}
		if !claim.Inserted {
			switch {
			case !bytes.Equal(claim.Fingerprint, b.fps[n]):
				b.out[n] = BatchResult{Failed, &FingerprintMismatchError{Consumer: i.cfg.Consumer, Key: d.Key,
					Recorded: claim.Fingerprint, Received: b.fps[n]}}
			case claim.Parked:
				b.out[n] = BatchResult{Parked, nil}
			default:
				b.out[n] = BatchResult{Duplicate, nil}
			}
			continue
		}
		start := time.Now()
		herr := runHandler(trace.ContextWithSpan(hctx, b.spans[n]), tx, func(ctx context.Context, tx *sqlx.Tx) error { return b.h(ctx, tx, d) })
		b.spent[n] += time.Since(start)
		if herr == nil {
			b.out[n] = BatchResult{Processed, nil}
			continue
		}
		herr = i.d.InterpretError(herr)
		if hctx.Err() != nil {
			// The deadline rolled the whole transaction back; this handler overran it.
			b.failed[n] = fmt.Errorf("inbox: handler for key %q did not finish within HandlerTimeout (%s): %w: %w",
				d.Key, i.cfg.HandlerTimeout, ErrHandlerTimeout, herr)
			return fmt.Errorf("handler for key %q: %w", d.Key, herr)
		}
		if isRetryable(herr) || dialect.Classify(herr) == dialect.KindConnection {
			// A deadlock may have ended the whole transaction (MySQL does that); a lost connection did.
			return fmt.Errorf("handler for key %q: %w", d.Key, herr)
		}
		if err := i.s.InboxRollbackToSavepoint(ctx, tx); err != nil {
			return b.dbError(hctx, err)
		}
		b.failed[n] = fmt.Errorf("inbox: handler for key %q: %w", d.Key, herr)
		b.out[n] = BatchResult{Failed, b.failed[n]}
	}
	committed = true // from here on a failed Commit has already ended the transaction
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", i.d.InterpretError(err))
	}
	return nil
}

// dbError is a failure of the library's own statements: a deadline that ended the transaction is said so.
func (b *batch) dbError(hctx context.Context, err error) error {
	if hctx.Err() != nil {
		return fmt.Errorf("%w (the transaction was rolled back at the deadline)", err)
	}
	return err
}
