package relay

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/outbox"
)

// finishTimeout bounds the statements that end a batch (delete, retry, bury, commit, unlock). They run even
// after ctx ends, so that a stopping relay leaves nothing claimed.
const finishTimeout = 30 * time.Second

// worker is one batch loop on a connection of its own: the connection carries both the batch transaction and
// the session-level advisory locks of the partitions the batch owns, so a dead connection releases both.
type worker struct {
	r     *Relay
	id    int
	conn  *sql.Conn
	chunk int // partitions tried per batch
	off   int // next partition to try

	cursor     int64 // unkeyed rows: highest id claimed in this scan
	lastRescan time.Time
	keyedFirst bool // alternates which kind of row gets the batch's room first

	streaming bool      // the previous batch claimed rows
	noKeyed   time.Time // when the last look for keyed partitions found none (zero: it found some)
}

// keyedRecheck is how long a worker that found no keyed rows skips looking for them again while its batches
// keep claiming unkeyed rows: a round trip saved on most batches of an unkeyed backlog, at the price of a
// keyed row enqueued meanwhile waiting up to this long. After an idle pass or a wake-up it always looks.
const keyedRecheck = 5 * time.Millisecond

func (r *Relay) newWorker(i int) *worker {
	chunk := (outbox.Partitions + r.cfg.Workers - 1) / r.cfg.Workers
	return &worker{r: r, id: i, chunk: chunk, off: (r.partBase + i*chunk) % outbox.Partitions, lastRescan: time.Now()}
}

// loop runs batches until ctx ends (Run) or, when drain is set, until a full turn of the partition ring finds
// nothing due. Published counts go to n when it is not nil.
func (w *worker) loop(ctx context.Context, drain bool, n *atomic.Int64) error {
	defer w.closeConn()
	r := w.r
	turn := (outbox.Partitions + w.chunk - 1) / w.chunk // batches to try every partition once
	empties := 0
	var wait, errWait time.Duration
	for {
		if ctx.Err() != nil {
			if drain {
				return ctx.Err()
			}
			return nil
		}
		wakeC := r.wake.C() // taken before the batch: a wake during it triggers another pass
		start := time.Now()
		info, err := w.batch(ctx)
		info.Duration = time.Since(start)
		w.streaming = err == nil && info.Claimed > 0
		if err != nil && info.Err == nil {
			info.Err = err
		}
		if n != nil {
			n.Add(int64(info.Published))
		}
		if r.cfg.OnBatch != nil && (info.Claimed > 0 || err != nil) {
			r.cfg.OnBatch(info)
		}
		if err != nil {
			if errors.Is(err, dialect.ErrSchemaMissing) {
				return fmt.Errorf("relay: %w", err)
			}
			if drain && ctx.Err() == nil {
				return fmt.Errorf("relay: drain: %w", err)
			}
			r.log.WarnContext(ctx, "relay: batch failed", "worker", w.id, "error", err)
			// The connection may be broken or still hold partition locks: start the next batch on a fresh one.
			w.dropConn()
			errWait = min(max(2*errWait, r.cfg.MinPollInterval), r.cfg.MaxPollInterval)
			sleepCtx(ctx, errWait)
			continue
		}
		errWait = 0
		if info.Claimed > 0 {
			r.active.Store(time.Now().UnixNano())
			empties, wait = 0, 0
			continue
		}
		if empties++; empties < turn {
			continue
		}
		if drain {
			return nil
		}
		empties = 0
		wait = r.idleWait(wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-wakeC:
			wait = 0
		}
		t.Stop()
	}
}

// closeConn ends the worker's connection. It is never handed back to the pool: its session has READ
// COMMITTED set and may hold partition locks.
func (w *worker) closeConn() { w.dropConn() }

func (w *worker) dropConn() {
	if w.conn != nil {
		store.DiscardConn(w.conn)
		w.conn = nil
	}
}

// nextPartitions picks the keyed partitions this batch tries to lock: up to chunk of the partitions that
// hold rows, going round the ring from where the previous batch stopped, so that the workers of a relay
// (which start chunk apart) and the relays (which start at random) spread over the partitions.
func (w *worker) nextPartitions(ctx context.Context) ([]int, error) {
	if w.streaming && !w.noKeyed.IsZero() && time.Since(w.noKeyed) < keyedRecheck {
		return nil, nil
	}
	have, err := w.r.s.OutboxKeyedPartitions(ctx, w.conn)
	if err != nil || len(have) == 0 {
		if err == nil {
			w.noKeyed = time.Now()
		}
		return nil, err
	}
	w.noKeyed = time.Time{}
	start := sort.SearchInts(have, w.off) // first partition at or after the offset, wrapping round
	n := min(w.chunk, len(have))
	ps := make([]int, n)
	for i := range ps {
		ps[i] = have[(start+i)%len(have)]
	}
	w.off = (ps[n-1] + 1) % outbox.Partitions
	return ps, nil
}

// batch claims due rows, publishes them and records the outcome in one transaction. Its database work runs
// under a context that ignores ctx's cancellation (with timeouts), so a batch that has started always ends
// cleanly; ctx only stops the next batch.
func (w *worker) batch(ctx context.Context) (info BatchInfo, err error) {
	r := w.r
	info.Worker = w.id
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PublishTimeout+2*finishTimeout)
	defer cancel()
	if w.conn == nil {
		c, err := r.db.Conn(ctx)
		if err != nil {
			return info, fmt.Errorf("get a connection: %w", r.cfg.Dialect.InterpretError(err))
		}
		if err := r.s.OutboxPrepareConn(bctx, c); err != nil {
			store.DiscardConn(c)
			return info, fmt.Errorf("prepare connection: %w", err)
		}
		w.conn = c
	}
	parts, err := w.nextPartitions(bctx)
	if err != nil {
		return info, fmt.Errorf("find keyed partitions: %w", err)
	}
	var locked []int
	if len(parts) > 0 {
		locked, err = r.s.OutboxLockPartitions(bctx, w.conn, parts)
		if err != nil {
			return info, fmt.Errorf("lock partitions: %w", err)
		}
	}
	if len(locked) > 0 {
		defer func() {
			uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
			defer ucancel()
			if uerr := r.s.OutboxUnlockPartitions(uctx, w.conn); uerr != nil {
				// A connection that may still hold partition locks must not be reused.
				w.dropConn()
				if err == nil {
					err = fmt.Errorf("unlock partitions: %w", uerr)
				}
			}
		}()
	}
	// READ COMMITTED comes from the session (OutboxPrepareConn): asking for it here costs MySQL a round trip.
	tx, err := w.conn.BeginTx(bctx, nil)
	if err != nil {
		return info, fmt.Errorf("begin: %w", r.cfg.Dialect.InterpretError(err))
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	rows, err := w.claim(bctx, tx, locked)
	if err != nil {
		return info, err
	}
	info.Claimed = len(rows)
	if len(rows) == 0 {
		done = true
		return info, r.cfg.Dialect.InterpretError(tx.Commit())
	}
	out := w.publishAll(bctx, rows)
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer fcancel()
	info.Published, info.Failed, info.Buried, info.Held = len(out.published), len(out.retry), len(out.bury), out.held
	if err := w.finish(fctx, tx, out); err != nil {
		info.Err = err
		return info, err
	}
	done = true
	if err := tx.Commit(); err != nil {
		info.Err = fmt.Errorf("commit: %w", r.cfg.Dialect.InterpretError(err))
		return info, info.Err
	}
	r.log.DebugContext(ctx, "relay: batch", "worker", w.id, "claimed", info.Claimed, "published", info.Published,
		"failed", info.Failed, "buried", info.Buried, "held", info.Held)
	return info, nil
}

// claim reads the batch: keyed rows of the partitions this worker locked (the lock is the claim) and unkeyed
// rows locked with SKIP LOCKED, the two kinds taking turns at the batch's room.
func (w *worker) claim(ctx context.Context, tx *sql.Tx, locked []int) ([]store.OutboxRow, error) {
	r := w.r
	limit := r.cfg.BatchSize
	w.keyedFirst = !w.keyedFirst
	var keyed, unkeyed []store.OutboxRow
	var err error
	if w.keyedFirst {
		if keyed, err = w.claimKeyed(ctx, tx, locked, limit); err == nil && limit > len(keyed) {
			unkeyed, err = w.claimUnkeyed(ctx, tx, limit-len(keyed))
		}
	} else {
		if unkeyed, err = w.claimUnkeyed(ctx, tx, limit); err == nil && limit > len(unkeyed) {
			keyed, err = w.claimKeyed(ctx, tx, locked, limit-len(unkeyed))
		}
	}
	if err != nil {
		return nil, err
	}
	return append(keyed, unkeyed...), nil
}

func (w *worker) claimKeyed(ctx context.Context, tx *sql.Tx, locked []int, limit int) ([]store.OutboxRow, error) {
	if len(locked) == 0 {
		return nil, nil
	}
	// Each partition's rows must be a prefix (in id order) of its due rows; cutting the union by id keeps that.
	per := min(limit, max(16, 2*limit/len(locked)))
	rows, err := w.r.s.OutboxSelectKeyed(ctx, tx, locked, per)
	if err != nil {
		return nil, fmt.Errorf("select keyed rows: %w", err)
	}
	for i := range rows {
		if !slices.Contains(locked, rows[i].Partition) {
			return nil, fmt.Errorf("select keyed rows: row %d of partition %d is outside the locked partitions %v", rows[i].ID, rows[i].Partition, locked)
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	if len(rows) > limit {
		rows = rows[:limit]
	}
	return rows, nil
}

func (w *worker) claimUnkeyed(ctx context.Context, tx *sql.Tx, limit int) ([]store.OutboxRow, error) {
	if time.Since(w.lastRescan) > w.r.cfg.RescanInterval {
		w.cursor, w.lastRescan = 0, time.Now()
	}
	rows, err := w.r.s.OutboxClaimUnkeyed(ctx, tx, w.cursor, limit)
	if err == nil && len(rows) == 0 && w.cursor > 0 {
		// Nothing past the cursor: look again from the start, where rows that committed out of id order,
		// rows whose backoff ended and requeued rows may wait.
		w.cursor, w.lastRescan = 0, time.Now()
		rows, err = w.r.s.OutboxClaimUnkeyed(ctx, tx, 0, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("claim unkeyed rows: %w", err)
	}
	for i := range rows {
		if rows[i].Partition >= 0 {
			return nil, fmt.Errorf("claim unkeyed rows: got row %d of partition %d", rows[i].ID, rows[i].Partition)
		}
	}
	if len(rows) < limit {
		w.cursor, w.lastRescan = 0, time.Now() // a short pass: the next starts from the beginning
	} else {
		w.cursor = rows[len(rows)-1].ID
	}
	return rows, nil
}

// finish records the batch's outcome inside its transaction.
func (w *worker) finish(ctx context.Context, tx *sql.Tx, out *outcome) error {
	r := w.r
	if len(out.published) > 0 {
		n, err := r.s.OutboxDelete(ctx, tx, out.published, r.cfg.Retention > 0)
		if err != nil {
			return fmt.Errorf("delete %d published rows: %w", len(out.published), err)
		}
		if int(n) != len(out.published) {
			r.log.WarnContext(ctx, "relay: fewer published rows deleted than claimed", "deleted", n, "published", len(out.published))
		}
	}
	if len(out.retry) > 0 {
		if err := r.s.OutboxRetry(ctx, tx, out.retry); err != nil {
			return fmt.Errorf("record %d failed attempts: %w", len(out.retry), err)
		}
	}
	if len(out.bury) > 0 {
		if err := r.s.OutboxBury(ctx, tx, out.bury); err != nil {
			return fmt.Errorf("move %d rows to %s: %w", len(out.bury), r.t.OutboxDead, err)
		}
		r.log.WarnContext(ctx, "relay: rows moved to the dead-letter table", "count", len(out.bury), "table", r.t.OutboxDead)
	}
	return nil
}
