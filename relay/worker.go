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
		if err != nil && info.Claimed == 0 && ctx.Err() != nil {
			// Stopping: the batch failed only because ctx ended before it claimed anything.
			if drain {
				return ctx.Err()
			}
			return nil
		}
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
			r.warn(ctx, "batch", "relay: batch failed", "worker", w.id, "connection_lost",
				errors.Is(err, dialect.ErrConnection), "error", err)
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

// batch claims due rows under a lease, publishes them and records the outcome. Its database work runs under a
// context that ignores ctx's cancellation (with timeouts), so a batch that has started always ends cleanly; ctx
// only stops the next batch.
//
// The statements: [look for keyed partitions, lock some] claim (commits the lease) ... publish, renewing the
// lease ... finish (one transaction, fenced by the token) [unlock]. The partition locks are held until the end:
// see the package documentation for why.
func (w *worker) batch(ctx context.Context) (info BatchInfo, err error) {
	r := w.r
	info.Worker = w.id
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PublishTimeout+2*finishTimeout)
	defer cancel()
	if w.conn == nil {
		if err := w.connect(ctx, bctx); err != nil {
			return info, err
		}
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
			if w.conn == nil {
				return // dropped: its locks went with it
			}
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
	token := newToken()
	claimStart := time.Now() // before the claim is sent: the database's lease end is later than this + Lease
	rows, claimErr := w.claim(bctx, token, locked)
	info.Claimed = len(rows)
	if len(rows) == 0 {
		return info, claimErr
	}
	lease := w.startLease(bctx, claimStart, token, rows)
	out := w.publishAll(lease.ctx, rows)
	lease.stop()
	info.Published, info.Failed, info.Buried = len(out.published), len(out.retry), len(out.bury)
	info.Held, info.Unavailable = out.held, out.unavailable
	out.fails.log(ctx, r, w.id)

	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer fcancel()
	if err := w.finish(ctx, fctx, claimStart, token, out, &info); err != nil {
		info.Err = err
		return info, err
	}
	w.afterFinish(fctx, out)
	if claimErr != nil {
		// The second claim of the batch failed after the first had leased rows: those were published; the error
		// still ends the connection.
		info.Err = claimErr
		return info, claimErr
	}
	r.log.DebugContext(ctx, "relay: batch", "worker", w.id, "claimed", info.Claimed, "published", info.Published,
		"failed", info.Failed, "buried", info.Buried, "held", info.Held, "unavailable", info.Unavailable)
	return info, nil
}

// connect gives the worker a connection of its own, readied for claims.
func (w *worker) connect(ctx, bctx context.Context) error {
	r := w.r
	c, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("get a connection: %w", r.cfg.Dialect.InterpretError(err))
	}
	if err := r.s.OutboxPrepareConn(bctx, c); err != nil {
		store.DiscardConn(c)
		return fmt.Errorf("prepare connection: %w", err)
	}
	w.conn = c
	return nil
}

// claim leases the batch: keyed rows of the partitions this worker locked and unkeyed rows, the two kinds
// taking turns at the batch's room (rows and payload bytes); the first claim always takes at least one row.
// Each claim commits its lease. When the second claim fails the rows of the first are returned with its error.
func (w *worker) claim(ctx context.Context, token int64, locked []int) ([]store.OutboxRow, error) {
	r := w.r
	w.keyedFirst = !w.keyedFirst
	first, second := w.claimUnkeyed, w.claimKeyed
	if w.keyedFirst {
		first, second = second, first
	}
	p := store.OutboxClaim{Token: token, Lease: r.cfg.Lease, Limit: r.cfg.BatchSize, MaxBytes: r.cfg.MaxBatchBytes,
		TakeOne: true, Parts: locked}
	rows, err := first(ctx, &p)
	if err != nil {
		return nil, err
	}
	p.Limit -= len(rows)
	p.MaxBytes -= payloadBytes(rows)
	p.TakeOne = len(rows) == 0
	if p.Limit > 0 && (p.MaxBytes > 0 || p.TakeOne) {
		more, err := second(ctx, &p)
		if err != nil {
			return rows, err
		}
		rows = append(rows, more...)
	}
	return rows, nil
}

func payloadBytes(rows []store.OutboxRow) int64 {
	var n int64
	for i := range rows {
		n += int64(len(rows[i].Payload))
	}
	return n
}

func (w *worker) claimKeyed(ctx context.Context, p *store.OutboxClaim) ([]store.OutboxRow, error) {
	if len(p.Parts) == 0 {
		return nil, nil
	}
	// Each partition's rows must be a prefix (in id order) of its due rows; cutting the union by id keeps that.
	q := *p
	q.PerPartition = min(p.Limit, max(16, 2*p.Limit/len(p.Parts)))
	rows, err := w.r.s.OutboxClaimKeyed(ctx, w.conn, &q)
	if err != nil {
		return nil, fmt.Errorf("claim keyed rows: %w", err)
	}
	for i := range rows {
		if !slices.Contains(p.Parts, rows[i].Partition) {
			return nil, fmt.Errorf("claim keyed rows: row %d of partition %d is outside the locked partitions %v", rows[i].ID, rows[i].Partition, p.Parts)
		}
	}
	return rows, nil
}

func (w *worker) claimUnkeyed(ctx context.Context, p *store.OutboxClaim) ([]store.OutboxRow, error) {
	if time.Since(w.lastRescan) > w.r.cfg.RescanInterval {
		w.cursor, w.lastRescan = 0, time.Now()
	}
	q := *p
	q.AfterID = w.cursor
	rows, err := w.r.s.OutboxClaimUnkeyed(ctx, w.conn, &q)
	if err == nil && len(rows) == 0 && w.cursor > 0 {
		// Nothing past the cursor: look again from the start, where rows that committed out of id order,
		// rows whose backoff or lease ended and requeued rows may wait.
		w.cursor, w.lastRescan = 0, time.Now()
		q.AfterID = 0
		rows, err = w.r.s.OutboxClaimUnkeyed(ctx, w.conn, &q)
	}
	if err != nil {
		return nil, fmt.Errorf("claim unkeyed rows: %w", err)
	}
	for i := range rows {
		if rows[i].Partition >= 0 {
			return nil, fmt.Errorf("claim unkeyed rows: got row %d of partition %d", rows[i].ID, rows[i].Partition)
		}
	}
	if len(rows) < p.Limit && payloadBytes(rows) < p.MaxBytes {
		w.cursor, w.lastRescan = 0, time.Now() // a short pass: the next starts from the beginning
	} else if len(rows) > 0 {
		w.cursor = rows[len(rows)-1].ID
	}
	return rows, nil
}

// finish records the batch's outcome in one transaction, touching only rows the batch still leases. When the
// database or the connection fails it tries again on a fresh connection, with a growing wait, for as long as
// that can spare a duplicate: until a lease past the batch's own has gone by (another relay may have published
// the rows again by then) or Run stops. Every statement is fenced by the token, so an attempt that did commit
// makes the next change nothing.
func (w *worker) finish(ctx, fctx context.Context, claimStart time.Time, token int64, out *outcome, info *BatchInfo) error {
	r := w.r
	f := &store.OutboxFinish{Token: token, Published: out.published, Keep: r.cfg.Retention > 0, Retry: out.retry,
		Bury: out.bury, Release: out.release, Hold: out.hold, HoldFor: outageHold}
	done, err := r.s.OutboxFinish(fctx, w.conn, f)
	for wait := 50 * time.Millisecond; err != nil && retryOnFreshConn(err); wait = min(2*wait, time.Second) {
		if fctx.Err() != nil || ctx.Err() != nil || time.Since(claimStart) > 2*r.cfg.Lease {
			break
		}
		w.dropConn()
		sleepCtx(fctx, wait)
		if err = w.connect(fctx, fctx); err == nil {
			done, err = r.s.OutboxFinish(fctx, w.conn, f)
		}
	}
	want := len(f.Published) + len(f.Retry) + len(f.Bury) + len(f.Release) + len(f.Hold)
	if err != nil {
		info.Lost = want
		return fmt.Errorf("finish: %w", err)
	}
	if lost := want - done.Published - done.Buried - done.Updated; lost > 0 {
		info.Lost = lost
		r.warn(ctx, "lost", "relay: rows were no longer leased by their batch when it finished (its lease had ended); they are published again",
			"worker", w.id, "rows", lost)
	}
	if done.Buried > 0 {
		r.warn(ctx, "dead", "relay: rows moved to the dead-letter table", "worker", w.id, "count", done.Buried,
			"table", r.t.OutboxDead)
	}
	return nil
}

// retryOnFreshConn says whether a failed finish is worth one more try on another connection.
func retryOnFreshConn(err error) bool {
	k := dialect.Classify(err)
	return k == dialect.KindConnection || k == dialect.KindRetryable
}

// afterFinish makes rows held for an outage due again where the outage ended: the topics whose breaker a
// publish of this batch closed, and the topics this batch held rows for whose breaker closed (or reopened)
// before the holds were written. A breaker closes before its relay makes the held rows due, so a hold written
// after that is seen here.
func (w *worker) afterFinish(ctx context.Context, out *outcome) {
	topics := map[string]bool{}
	for _, b := range out.closed {
		topics[b.topic] = true
	}
	for b, epoch := range out.holds {
		if open, e := b.state(); !open || e != epoch {
			topics[b.topic] = true
		}
	}
	for topic := range topics {
		w.r.resume(ctx, w.conn, topic)
	}
}

// resume makes every row held for the topic's outage due now, in batches.
func (r *Relay) resume(ctx context.Context, db store.DBTX, topic string) {
	const limit = 20000
	total := 0
	for {
		n, err := r.s.OutboxResume(ctx, db, topic, limit)
		total += n
		if err != nil {
			r.warn(ctx, "resume", "relay: making held rows due failed; they are due when their hold ends", "topic", topic,
				"hold", outageHold, "error", err)
			break
		}
		if n < limit {
			break
		}
	}
	if total > 0 {
		r.log.DebugContext(ctx, "relay: held rows due again", "topic", topic, "rows", total)
		r.wake.broadcast()
	}
}
