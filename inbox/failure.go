package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/txbox/txbox/internal/store"
)

// failureTimeout bounds the short transaction that counts a failure (and maybe parks the message). It runs
// after the handler's transaction rolled back, detached from the caller's ctx so that a failure is counted
// even when the handler timed out.
const failureTimeout = 10 * time.Second

// maxErrorBytes is how much of an error's text is stored: enough to diagnose, small enough for any row.
const maxErrorBytes = 4000

// fail counts a failed delivery outside the rolled-back transaction and parks the message when it reached
// MaxAttempts. It returns what Process returns.
func (i *Inbox) fail(ctx context.Context, d Delivery, fp []byte, cause error) (Result, error) {
	attempts, parked, err := i.recordFailure(ctx, d, fp, errorText(cause), false)
	switch {
	case err != nil:
		// The handler's error is what matters to the caller; the count is lost for this delivery only.
		i.log.WarnContext(ctx, "inbox: could not count a failed delivery", "key", d.Key, "error", err, "handler_error", cause)
		return Failed, cause
	case parked:
		i.log.WarnContext(ctx, "inbox: message parked after repeated failures", "key", d.Key,
			"attempt", attempts, "error", cause)
		return Parked, nil
	case attempts >= i.cfg.MaxAttempts:
		// Parking found the key recorded: another delivery processed the message meanwhile.
		return Duplicate, nil
	}
	i.log.DebugContext(ctx, "inbox: delivery failed", "key", d.Key, "attempt", attempts, "error", cause)
	return Failed, cause
}

// recordFailure runs countFailure, retrying deadlocks and lock timeouts, in a context of its own (see
// failureTimeout).
func (i *Inbox) recordFailure(ctx context.Context, d Delivery, fp []byte, msg string, park bool) (attempts int, parked bool, err error) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureTimeout)
	defer cancel()
	for n := 0; ; n++ {
		attempts, parked, err = i.countFailure(fctx, d, fp, msg, park)
		if err == nil || !isRetryable(err) || n >= i.cfg.RetryLimit || !sleepCtx(fctx, i.backoff(n)) {
			return attempts, parked, err
		}
	}
}

// countFailure is one short transaction: attempts+1, and past MaxAttempts (or at once when park is set) move
// the message to the dead-letter table. It reports the count and whether the message is now parked.
func (i *Inbox) countFailure(ctx context.Context, d Delivery, fp []byte, msg string, park bool) (int, bool, error) {
	tx, err := i.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("begin transaction: %w", i.d.InterpretError(err))
	}
	defer rollback(tx) // no-op after Commit
	n, err := i.s.InboxRecordFailure(ctx, tx, &store.InboxRecordFailureParams{
		Consumer: i.cfg.Consumer, Key: d.Key, LastError: msg,
	})
	if err != nil {
		return 0, false, err
	}
	parked := false
	if n >= i.cfg.MaxAttempts || park {
		var headers []byte
		if len(d.Headers) > 0 {
			if headers, err = json.Marshal(d.Headers); err != nil {
				return 0, false, fmt.Errorf("encode headers: %w", err)
			}
		}
		parked, err = i.s.InboxPark(ctx, tx, &store.InboxParkParams{
			Consumer: i.cfg.Consumer, Key: d.Key, Fingerprint: fp, Payload: d.Payload,
			Headers: headers, Topic: d.Topic, MessageID: d.MessageID, Attempts: n, LastError: msg,
		})
		if err != nil {
			return 0, false, err
		}
		if park && !parked {
			return n, false, nil // Park on a recorded key: nothing to change, the count rolls back too
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("commit: %w", i.d.InterpretError(err))
	}
	return n, parked, nil
}

// errorText makes an error storable in a TEXT column on both databases: valid UTF-8, no NUL bytes (PostgreSQL
// rejects both), and short (MySQL would truncate silently without strict mode).
func errorText(err error) string {
	s := strings.ToValidUTF8(err.Error(), "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) > maxErrorBytes {
		cut := maxErrorBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
