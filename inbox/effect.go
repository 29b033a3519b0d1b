package inbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"go.opentelemetry.io/otel/propagation"
)

// Effects makes effects outside the database — a payment gateway charged, an email sent, another service's
// API called — happen once per (consumer, key) as far as the downstream system deduplicates by an idempotency
// key, with a two-phase idempotency record per key in an EffectStore (SQL or Redis). See the package
// documentation, "Effects outside the database", for what is and is not guaranteed. It is safe for concurrent
// use; several processes may share a store.
type Effects struct {
	st  EffectStore
	cfg EffectsConfig
	log *slog.Logger
}

// NewEffects returns Effects keeping its records in st. It validates cfg and fills in defaults; the error
// names the bad field and matches ErrInvalidConfig. It does not reach the store: call Check at start-up.
func NewEffects(st EffectStore, cfg EffectsConfig) (*Effects, error) {
	if st == nil {
		return nil, fmt.Errorf("%w: nil EffectStore", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Effects{st: st, cfg: cfg, log: cfg.Logger.With("component", "txbox.effects", "consumer", cfg.Consumer)}, nil
}

// Config returns the configuration with defaults filled in.
func (e *Effects) Config() EffectsConfig { return e.cfg }

// Check tells whether the store answers and is set up; see EffectStore.CheckEffects.
func (e *Effects) Check(ctx context.Context) error {
	if err := e.st.CheckEffects(ctx); err != nil {
		return fmt.Errorf("inbox: effects: %w", explain(err))
	}
	return nil
}

// Claim is what Begin found for a delivery's key. Use it from one goroutine.
type Claim struct {
	// Key is the delivery's business key: pass it to the downstream system as its idempotency key (or a key
	// derived from it, the same on every run), so that a run after a takeover is recognised there.
	Key string
	// Status is EffectAcquired (this claim holds the lease: run the effect, then Complete or Release),
	// EffectCompleted (completed by an earlier run, or by this claim's Complete; Result is the saved result) or
	// EffectParked (parked, by an earlier run or by this claim's Release; nothing runs).
	Status EffectStatus
	// Duplicate tells that Begin found the effect completed by an earlier run.
	Duplicate bool
	// Attempt is the number of this run when acquired: 1 for the first, one more for every failed run before
	// (errors and expired leases).
	Attempt int
	// TakenOver tells that the lease was taken over from an earlier run that neither completed nor released
	// it in time (it died, or ran past its lease): that run may have acted, with the same idempotency key.
	TakenOver bool
	// Result is the saved result when Status is EffectCompleted (nil when none was saved).
	Result []byte

	fx    *Effects
	owner []byte
	d     Delivery
}

// Begin begins d's effect: it records the key as running under a new lease held by the returned claim, or
// reports what an earlier run left. It returns:
//
//   - a claim with Status EffectAcquired for a new key, a key whose last run failed (released), or a key whose
//     lease expired (TakenOver; the expired run counts as a failed attempt). Run the effect with Claim.Key as
//     the downstream idempotency key, then Complete or Release the claim.
//   - a claim with Status EffectCompleted and Duplicate set when the effect completed before: Result is what
//     that run saved. Acknowledge the message.
//   - a claim with Status EffectParked when the key is parked (after MaxAttempts failed runs; an expired lease
//     that was the last attempt allowed parks the key here). Acknowledge the message.
//   - an error matching ErrBusy (a *BusyError) when another run holds a live lease: deliver the message later.
//   - an error matching ErrFingerprintMismatch when the key was begun with another payload, ErrInvalidDelivery
//     for a delivery the store cannot record (nothing is written), or the store's error.
func (e *Effects) Begin(ctx context.Context, d Delivery) (*Claim, error) {
	if err := validateDelivery(d, e.cfg.MaxPayloadBytes); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(d.Payload)
	owner := make([]byte, 16)
	_, _ = rand.Read(owner)
	res, err := e.st.BeginEffect(ctx, &EffectBeginParams{
		Consumer: e.cfg.Consumer, Delivery: d, Fingerprint: sum[:], Owner: owner, Lease: e.cfg.Lease,
		Retention: e.cfg.Retention, MaxAttempts: e.cfg.MaxAttempts,
		ExpiredError: fmt.Sprintf("lease expired: the run that held the key neither completed nor released it within Lease (%s)", e.cfg.Lease),
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: begin effect of key %q: %w", d.Key, explain(err))
	}
	c := &Claim{Key: d.Key, Status: res.Status, fx: e, owner: owner, d: d}
	switch res.Status {
	case EffectAcquired:
		c.Attempt, c.TakenOver = res.Attempts+1, res.TakenOver
		if res.TakenOver {
			e.log.WarnContext(ctx, "inbox: effect lease expired; taken over", "key", d.Key, "attempt", c.Attempt)
		}
		return c, nil
	case EffectCompleted:
		c.Duplicate, c.Result = true, res.Result
		return c, nil
	case EffectParked:
		if res.ParkedNow {
			e.log.WarnContext(ctx, "inbox: effect parked: its last lease allowed expired", "key", d.Key, "attempt", res.Attempts)
		}
		return c, nil
	case EffectBusy:
		return nil, &BusyError{Consumer: e.cfg.Consumer, Key: d.Key, RetryAfter: res.LeaseLeft}
	case EffectMismatch:
		return nil, &FingerprintMismatchError{Consumer: e.cfg.Consumer, Key: d.Key, Recorded: res.Fingerprint, Received: sum[:]}
	}
	return nil, fmt.Errorf("inbox: begin effect of key %q: the store answered %s", d.Key, res.Status)
}

// Complete records the claim's effect as done with result (at most MaxResultBytes; nil or empty for none),
// which later deliveries of the key find in Claim.Result. It needs the claim to hold the lease: it returns an
// error matching ErrLeaseLost when another run took the key over after the lease expired (that run completes
// it), and ErrInvalidResult, writing nothing, for a result that is too large. A claim whose lease expired but
// was not taken over still completes. It runs detached from ctx's cancellation (the effect happened; recording
// it must not be cut short by a shutdown, and on the hot path a cancellable context costs the SQL drivers a
// watcher per statement), bounded by the store's own timeouts; calling it again after an error is safe.
func (c *Claim) Complete(ctx context.Context, result []byte) error {
	if c.Status != EffectAcquired {
		return fmt.Errorf("inbox: complete effect of key %q: the claim is %s, not acquired", c.Key, c.Status)
	}
	if len(result) > c.fx.cfg.MaxResultBytes {
		return fmt.Errorf("%w: key %q: result is %d bytes, more than MaxResultBytes (%d)", ErrInvalidResult, c.Key,
			len(result), c.fx.cfg.MaxResultBytes)
	}
	ctx = context.WithoutCancel(ctx)
	ok, err := c.fx.st.CompleteEffect(ctx, &EffectCompleteParams{Consumer: c.fx.cfg.Consumer, Key: c.Key,
		Owner: c.owner, Result: result, Retention: c.fx.cfg.Retention})
	switch {
	case err != nil:
		return fmt.Errorf("inbox: complete effect of key %q: %w", c.Key, explain(err))
	case !ok:
		c.fx.log.WarnContext(ctx, "inbox: effect done but its lease was taken over; the new run completes it", "key", c.Key)
		return fmt.Errorf("%w: key %q was taken over after this run's lease (%s) expired", ErrLeaseLost, c.Key, c.fx.cfg.Lease)
	}
	c.Status, c.Result = EffectCompleted, result
	if len(result) == 0 {
		c.Result = nil
	}
	return nil
}

// Release records a failed run of the claim's effect with cause as its last error and frees the key, so the
// next delivery runs the effect again (with the same idempotency key: the downstream system may have acted).
// The run that reaches MaxAttempts parks the key with its delivery instead and Release reports parked (the
// claim's Status becomes EffectParked): acknowledge the message; ListDead, Replay and DropDead handle it. Like
// Complete it needs the lease (ErrLeaseLost otherwise) and runs detached from ctx's cancellation.
func (c *Claim) Release(ctx context.Context, cause error) (parked bool, err error) {
	return c.release(ctx, cause, c.Attempt >= c.fx.cfg.MaxAttempts)
}

func (c *Claim) release(ctx context.Context, cause error, park bool) (bool, error) {
	if c.Status != EffectAcquired {
		return false, fmt.Errorf("inbox: release effect of key %q: the claim is %s, not acquired", c.Key, c.Status)
	}
	if cause == nil {
		cause = errors.New("released without a cause")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureTimeout)
	defer cancel()
	ok, err := c.fx.st.ReleaseEffect(ctx, &EffectReleaseParams{Consumer: c.fx.cfg.Consumer, Delivery: c.d,
		Owner: c.owner, LastError: errorText(cause), Park: park, Retention: c.fx.cfg.Retention})
	switch {
	case err != nil:
		return false, fmt.Errorf("inbox: release effect of key %q: %w", c.Key, explain(err))
	case !ok:
		return false, fmt.Errorf("%w: key %q was taken over after this run's lease (%s) expired", ErrLeaseLost, c.Key, c.fx.cfg.Lease)
	case park:
		c.Status = EffectParked
		c.fx.log.WarnContext(ctx, "inbox: effect parked after repeated failures", "key", c.Key, "attempt", c.Attempt, "error", cause)
	default:
		c.fx.log.DebugContext(ctx, "inbox: effect failed", "key", c.Key, "attempt", c.Attempt, "error", cause)
	}
	return park, nil
}

// EffectFunc performs an effect outside the database for claim c, passing c.Key (or a key derived from it) to
// the downstream system as its idempotency key, and returns a small result to save (a charge id, say; nil for
// none). ctx ends when the claim's lease does.
type EffectFunc func(ctx context.Context, c *Claim) ([]byte, error)

// Run runs fn once for d's key as far as the records can tell: Begin, then fn, then Complete with fn's result
// or, when fn fails (error or panic), Release. It returns what Process would for the same outcome:
//
//   - Processed: fn ran and its result is saved.
//   - Duplicate: the effect completed before; fn did not run (Begin's claim has the saved result).
//   - Parked: the key is parked (now, after fn failed MaxAttempts times, or before); fn did not run or failed.
//   - Failed with an error: ErrBusy (another run holds the lease), fn's error (released: the next delivery
//     runs it again), ErrLeaseLost (fn ran, but the key was taken over meanwhile), ErrFingerprintMismatch,
//     ErrInvalidDelivery, a result over MaxResultBytes (ErrInvalidResult; counted as a failed run), or the
//     store's error. Deliver the message again, except for ErrFingerprintMismatch and ErrInvalidDelivery.
//
// fn's ctx carries the trace context of d.Headers and ends when the lease does (measured from Begin), or when
// ctx ends; a run cut short that way is released and counted like any failed run.
func (e *Effects) Run(ctx context.Context, d Delivery, fn EffectFunc) (Result, error) {
	if fn == nil {
		return Failed, errors.New("inbox: nil EffectFunc")
	}
	c, err := e.Begin(ctx, d)
	if err != nil {
		return Failed, err
	}
	switch c.Status {
	case EffectCompleted:
		return Duplicate, nil
	case EffectParked:
		return Parked, nil
	}
	return c.run(ctx, fn, false)
}

// run runs fn for an acquired claim and completes or releases it; parkOnFailure parks at the first failure
// (Replay).
func (c *Claim) run(ctx context.Context, fn EffectFunc, parkOnFailure bool) (Result, error) {
	fctx, cancel := context.WithTimeout(ctx, c.fx.cfg.Lease)
	if len(c.d.Headers) > 0 {
		fctx = c.fx.cfg.Propagator.Extract(fctx, propagation.MapCarrier(c.d.Headers))
	}
	result, err := runEffect(fctx, c, fn)
	cancel()
	if err == nil {
		err = c.Complete(ctx, result)
		if err == nil {
			return Processed, nil
		}
		if !errors.Is(err, ErrInvalidResult) {
			return Failed, err
		}
	} else {
		err = fmt.Errorf("inbox: effect of key %q (attempt %d): %w", c.Key, c.Attempt, err)
	}
	parked, rerr := c.release(ctx, err, parkOnFailure || c.Attempt >= c.fx.cfg.MaxAttempts)
	switch {
	case rerr != nil:
		return Failed, fmt.Errorf("%w; recording the failure failed too: %w", err, rerr)
	case parked && !parkOnFailure:
		return Parked, nil
	}
	return Failed, err
}

// runEffect calls fn, turning a panic into a *PanicError, as Process does for handlers.
func runEffect(ctx context.Context, c *Claim, fn EffectFunc) (result []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn(ctx, c)
}

// Park parks d's key at once with cause as its last error, without running anything, for a delivery no retry
// can fix (a payload that does not decode): ListDead, Replay and DropDead find it, and later deliveries of the
// key return Parked. It returns Parked, or Duplicate when the key is completed or parked already (nothing
// changes); ErrBusy when another run holds the key.
func (e *Effects) Park(ctx context.Context, d Delivery, cause error) (Result, error) {
	if cause == nil {
		return Failed, errors.New("inbox: Park needs the cause")
	}
	c, err := e.Begin(ctx, d)
	if err != nil {
		return Failed, err
	}
	if c.Status != EffectAcquired {
		return Duplicate, nil
	}
	if _, err := c.release(ctx, cause, true); err != nil {
		return Failed, err
	}
	e.log.WarnContext(ctx, "inbox: effect parked", "key", d.Key, "error", cause)
	return Parked, nil
}
