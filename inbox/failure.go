package inbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// failureTimeout bounds the short transaction that counts a failure (and maybe parks the message), plus
// parkTimePerMiB for every MiB of payload and headers the park may write: a 17 MiB payload through lib/pq (sent
// as hex text) took more than 10s on a loaded machine, and a count lost to the deadline runs the handler once
// more than MaxAttempts. It runs after the handler's transaction rolled back, detached from the caller's ctx so
// that a failure is counted even when the handler timed out.
const (
	failureTimeout = 10 * time.Second
	parkTimePerMiB = 2 * time.Second
)

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
// failureTimeout). When the database refuses the dead letter itself (parkRefused), it counts and parks again,
// keeping only the message's sizes: a failure that cannot be parked would roll its count back with it, and the
// handler would run for ever.
func (i *Inbox) recordFailure(ctx context.Context, d Delivery, fp []byte, msg string, park bool) (attempts int, parked bool, err error) {
	size := len(d.Payload)
	for k, v := range d.Headers {
		size += len(k) + len(v)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureTimeout+time.Duration(size>>20)*parkTimePerMiB)
	defer cancel()
	minimal := false
	for n := 0; ; n++ {
		attempts, parked, err = i.countFailure(fctx, d, fp, msg, park, minimal)
		if !minimal && parkRefused(err) && fctx.Err() == nil {
			i.log.WarnContext(ctx, "inbox: the database refused the dead letter; parking it without payload and headers",
				"key", d.Key, "payload_bytes", len(d.Payload), "error", err)
			minimal = true
			continue
		}
		if err == nil || !isRetryable(err) || n >= i.cfg.RetryLimit || !sleepCtx(fctx, i.backoff(n)) {
			return attempts, parked, err
		}
	}
}

// parkError is an error of the statement that writes the dead letter.
type parkError struct{ err error }

func (e parkError) Error() string { return e.err.Error() }
func (e parkError) Unwrap() error { return e.err }

// parkRefused reports an error of the park statement that is about the row, not the database's state: not a
// deadlock, a lost connection or a missing table, which parking without the payload would not fix.
func parkRefused(err error) bool {
	var pe parkError
	if !errors.As(err, &pe) {
		return false
	}
	switch dialect.Classify(err) {
	case dialect.KindRetryable, dialect.KindConnection, dialect.KindSchemaMissing:
		return false
	}
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// countFailure is one short transaction: attempts+1, and past MaxAttempts (or at once when park is set) move
// the message to the dead-letter table, without payload and headers when minimal. It reports the count and
// whether the message is now parked.
func (i *Inbox) countFailure(ctx context.Context, d Delivery, fp []byte, msg string, park, minimal bool) (int, bool, error) {
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
		headers, err := marshalHeaders(d.Headers)
		if err != nil {
			return 0, false, fmt.Errorf("encode headers: %w", err)
		}
		p := &store.InboxParkParams{
			Consumer: i.cfg.Consumer, Key: d.Key, Fingerprint: fp, Payload: d.Payload,
			Headers: headers, Topic: d.Topic, MessageID: d.MessageID, Attempts: n, LastError: msg, Minimal: minimal,
		}
		if len(p.Payload) > i.cfg.MaxPayloadBytes { // Park of an oversized delivery: keep its beginning
			p.Payload, p.PayloadBytes = p.Payload[:i.cfg.MaxPayloadBytes], int64(len(d.Payload))
		}
		if p.Keys, err = i.keysLayout(ctx); err != nil {
			return 0, false, err
		}
		parked, err = i.s.InboxPark(ctx, tx, p)
		if err != nil {
			return 0, false, parkError{err}
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

// marshalHeaders encodes headers as a JSON object, or nil for none. Without HTML escaping: json.Marshal writes
// '<', '>' and '&' as six bytes each.
func marshalHeaders(h map[string]string) ([]byte, error) {
	if len(h) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
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
