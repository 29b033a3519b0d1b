package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// DeadLetter is a parked message: it failed MaxAttempts times and waits for Replay or DropDead. Deliveries of
// its key meanwhile return Parked without running the handler.
type DeadLetter struct {
	ID        int64
	Delivery  Delivery // Key, Payload, Headers, Topic and MessageID as delivered (see Truncated); Attempt is 0
	Attempts  int      // failed deliveries counted before parking
	LastError string   // the last failure's error text (at most 4000 bytes)
	ParkedAt  time.Time
	// Truncated is set when the message was too large for the database to store whole; nil otherwise. Such a
	// dead letter can be listed and dropped, not replayed or released (ErrTruncated).
	Truncated *Truncation
}

// Truncation records what parking cut from a message the database could not store whole: on MySQL, a parked
// row must fit the server's max_allowed_packet, and headers 16 MiB. Delivery.Payload then holds the payload's
// first bytes and Delivery.Headers is nil when HeadersBytes is set. When the database refuses the row for another
// reason, the message is parked without payload and headers. Parking never fails for size: a message that
// fails MaxAttempts times is parked, and its handler does not run again.
type Truncation struct {
	PayloadBytes  int    // the delivered payload's length
	PayloadSHA256 []byte // the delivered payload's SHA-256
	HeadersBytes  int    // the delivered headers' length as JSON when they were dropped; 0 when they are kept
}

// DeadFilter selects dead letters for ListDead.
type DeadFilter struct {
	Key     string // only this key, when not empty
	AfterID int64  // only ids above this one: pass the last ID of a page to get the next page
	Limit   int    // page size; default 100, at most 1000
}

// ListDead lists the consumer's dead letters, oldest first, one page at a time (see DeadFilter).
func (i *Inbox) ListDead(ctx context.Context, f DeadFilter) ([]DeadLetter, error) {
	switch {
	case f.Limit == 0:
		f.Limit = 100
	case f.Limit < 0 || f.Limit > 1000:
		return nil, fmt.Errorf("inbox: list dead letters: Limit must be between 1 and 1000, got %d", f.Limit)
	}
	rows, err := i.s.InboxDeadList(ctx, i.db, &store.InboxDeadListParams{
		Consumer: i.cfg.Consumer, Key: f.Key, AfterID: f.AfterID, Limit: f.Limit,
	})
	if err != nil {
		return nil, fmt.Errorf("inbox: %w", explain(err))
	}
	out := make([]DeadLetter, 0, len(rows))
	for _, r := range rows {
		dl, err := deadLetter(r)
		if err != nil {
			return nil, err
		}
		out = append(out, dl)
	}
	return out, nil
}

func deadLetter(r store.InboxDeadRow) (DeadLetter, error) {
	dl := DeadLetter{
		ID:        r.ID,
		Delivery:  Delivery{Key: r.Key, Payload: r.Payload, Topic: r.Topic, MessageID: r.MessageID},
		Attempts:  r.Attempts,
		LastError: r.LastError,
		ParkedAt:  r.ParkedAt,
	}
	if r.PayloadBytes > 0 || r.HeadersBytes > 0 {
		dl.Truncated = &Truncation{PayloadBytes: len(r.Payload), PayloadSHA256: r.Fingerprint, HeadersBytes: int(r.HeadersBytes)}
		if r.PayloadBytes > 0 {
			dl.Truncated.PayloadBytes = int(r.PayloadBytes)
		}
	}
	if len(r.Headers) > 0 {
		if err := json.Unmarshal(r.Headers, &dl.Delivery.Headers); err != nil {
			return dl, fmt.Errorf("inbox: dead letter %d: decode headers: %w", r.ID, err)
		}
	}
	return dl, nil
}

// Replay runs h once for the dead letter id, from its stored payload, in one transaction that removes the
// dead letter and records its key as processed (so later deliveries are Duplicate). It returns Processed. A
// dead letter that was cut when parked (DeadLetter.Truncated) is not replayed: ErrTruncated.
// When h fails, everything is rolled back and the dead letter stays. Replaying an id that is gone (replayed
// or dropped already, even concurrently) returns ErrDeadNotFound and runs nothing. If the key was recorded
// as processed meanwhile, the dead letter is removed without running h and Replay returns Duplicate.
// HandlerTimeout and deadlock retries apply as in Process.
func (i *Inbox) Replay(ctx context.Context, id int64, h ReplayHandler) (Result, error) {
	if h == nil {
		return Failed, errNilHandler
	}
	return i.settleDead(ctx, id, h)
}

// DropDead discards the dead letter id without running anything: its key is recorded as processed, so that
// later deliveries of it are acknowledged as Duplicate, until Purge removes it after Retention. It returns
// ErrDeadNotFound when the id is gone.
func (i *Inbox) DropDead(ctx context.Context, id int64) error {
	_, err := i.settleDead(ctx, id, nil)
	return err
}

func (i *Inbox) settleDead(ctx context.Context, id int64, h ReplayHandler) (Result, error) {
	hctx, cancel := context.WithTimeout(ctx, i.cfg.HandlerTimeout)
	defer cancel()
	for n := 0; ; n++ {
		res, err := i.settleDeadOnce(ctx, hctx, id, h)
		if err == nil || !isRetryable(err) || n >= i.cfg.RetryLimit || !sleepCtx(hctx, i.backoff(n)) {
			if err != nil && ctx.Err() == nil && hctx.Err() != nil {
				err = fmt.Errorf("inbox: dead letter %d: not settled within HandlerTimeout (%s): %w: %w (last error: %v)",
					id, i.cfg.HandlerTimeout, ErrHandlerTimeout, context.DeadlineExceeded, err)
			}
			return res, err
		}
	}
}

// settleDeadOnce is one transaction; like processOnce, only the handler runs under hctx and the transaction
// is rolled back when hctx ends.
func (i *Inbox) settleDeadOnce(ctx, hctx context.Context, id int64, h ReplayHandler) (Result, error) {
	tx, err := i.db.BeginTxx(ctx, nil)
	if err != nil {
		return Failed, fmt.Errorf("inbox: dead letter %d: begin transaction: %w", id, i.d.InterpretError(err))
	}
	committed := false
	defer func() {
		if !committed {
			rollback(tx)
		}
	}()
	stop := context.AfterFunc(hctx, func() { rollback(tx) })
	defer stop()
	p := store.InboxDeadGetParams{Consumer: i.cfg.Consumer, ID: id, ForUpdate: true}
	row, found, err := i.s.InboxDeadGet(ctx, tx, &p)
	if err != nil {
		return Failed, fmt.Errorf("inbox: dead letter %d: %w", id, explain(err))
	}
	if !found {
		return Failed, fmt.Errorf("%w: id %d, consumer %q", ErrDeadNotFound, id, i.cfg.Consumer)
	}
	dl, err := deadLetter(row)
	if err != nil {
		return Failed, err
	}
	if h != nil && dl.Truncated != nil {
		return Failed, truncatedError(dl)
	}
	if _, err := i.s.InboxDeadDelete(ctx, tx, &p); err != nil {
		return Failed, fmt.Errorf("inbox: dead letter %d: %w", id, err)
	}
	keys, err := i.keysLayout(ctx)
	if err != nil {
		return Failed, fmt.Errorf("inbox: dead letter %d: %w", id, err)
	}
	fresh, err := i.s.InboxSettle(ctx, tx, &store.InboxKeyParams{
		Consumer: i.cfg.Consumer, Key: row.Key, Fingerprint: row.Fingerprint, Keys: keys,
	})
	if err != nil {
		return Failed, fmt.Errorf("inbox: dead letter %d: %w", id, err)
	}
	res := Processed
	if !fresh {
		res = Duplicate
	} else if h != nil {
		err := runHandler(hctx, tx, func(ctx context.Context, tx *sqlx.Tx) error { return h(ctx, tx, dl.Delivery) })
		if err != nil {
			return Failed, fmt.Errorf("inbox: replay handler for dead letter %d (key %q): %w", id, row.Key, err)
		}
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return Failed, fmt.Errorf("inbox: dead letter %d: commit: %w", id, i.d.InterpretError(err))
	}
	return res, nil
}

// Release takes the dead letter id out of the inbox without running anything, inside tx (the caller's
// transaction, which it neither commits nor rolls back): it deletes the dead letter and the key's parked
// record, so that the next delivery of the key runs the handler again as a new message, and returns the dead
// letter as it was stored. It is the inbox half of a requeue: the broker acknowledged the parked message long
// ago and will not deliver it again by itself, so the caller sends it again in the same transaction, e.g. by
// enqueuing its topic, key, payload and headers in an outbox on the same database (txbox dead requeue --inbox
// does that). If that send is rolled back, so is the release. A key that was recorded as processed meanwhile
// stays recorded: a new delivery of it is then a Duplicate. It returns ErrDeadNotFound when the id is gone, and
// ErrTruncated, changing nothing, for a dead letter that was cut when parked.
func (i *Inbox) Release(ctx context.Context, tx dialect.DBTX, id int64) (DeadLetter, error) {
	p := store.InboxDeadGetParams{Consumer: i.cfg.Consumer, ID: id, ForUpdate: true}
	row, found, err := i.s.InboxDeadGet(ctx, tx, &p)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("inbox: release dead letter %d: %w", id, explain(err))
	}
	if !found {
		return DeadLetter{}, fmt.Errorf("%w: id %d, consumer %q", ErrDeadNotFound, id, i.cfg.Consumer)
	}
	dl, err := deadLetter(row)
	if err != nil {
		return DeadLetter{}, err
	}
	if dl.Truncated != nil {
		return DeadLetter{}, truncatedError(dl)
	}
	if _, err := i.s.InboxDeadDelete(ctx, tx, &p); err != nil {
		return DeadLetter{}, fmt.Errorf("inbox: release dead letter %d: %w", id, err)
	}
	keys, err := i.keysLayout(ctx)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("inbox: release dead letter %d: %w", id, err)
	}
	if _, err := i.s.InboxUnpark(ctx, tx, &store.InboxKeyParams{Consumer: i.cfg.Consumer, Key: row.Key, Keys: keys}); err != nil {
		return DeadLetter{}, fmt.Errorf("inbox: release dead letter %d: %w", id, err)
	}
	i.log.InfoContext(ctx, "inbox: dead letter released", "dead_id", id, "key", row.Key, "topic", row.Topic)
	return dl, nil
}

func truncatedError(dl DeadLetter) error {
	return fmt.Errorf("%w: dead letter %d (key %q) keeps %d of the payload's %d bytes: drop it (the payload's "+
		"SHA-256 is %x)", ErrTruncated, dl.ID, dl.Delivery.Key, len(dl.Delivery.Payload), dl.Truncated.PayloadBytes,
		dl.Truncated.PayloadSHA256)
}
