package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/outbox"
)

// Relay publishes committed outbox rows through a Publisher and deletes what the Publisher confirmed. See the
// package documentation for its guarantees. A Relay's Run and Drain may be called concurrently and several
// times; each call uses connections of its own.
type Relay struct {
	db  *sqlx.DB
	cfg Config
	s   store.Store
	t   dialect.Tables
	log *slog.Logger

	wake      wakeup
	breakers  breakers
	warns     warnLimiter
	listening atomic.Int32 // listeners with a live LISTEN connection
	active    atomic.Int64 // unix nanoseconds of the last batch (of any worker) that claimed rows
	partBase  int          // where this relay's workers start in the partition ring
}

// New validates cfg, fills its defaults and returns a Relay on db. Errors wrap ErrInvalidConfig.
func New(db *sqlx.DB, cfg Config) (*Relay, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil *sqlx.DB", ErrInvalidConfig)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t, _ := dialect.TablesFor(cfg.Prefix) // validated by withDefaults
	s, err := store.New(cfg.Dialect, t)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	r := &Relay{db: db, cfg: cfg, s: s, t: t, log: cfg.Logger.With("component", "txbox.relay"), partBase: rand.IntN(outbox.Partitions)}
	r.wake.ch = make(chan struct{})
	return r, nil
}

// Run publishes rows until ctx ends, then finishes the batches in flight (publishes, deletes and commits
// them) and returns nil. It returns early with an error only when the relay cannot work at all, e.g. an
// unmigrated schema (the error wraps dialect.ErrSchemaMissing). Transient database and broker errors are
// logged and retried.
func (r *Relay) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Helpers beside the workers: the notification listener (it ends at once where the database or driver
	// cannot notify), the probes of unavailable topics and the purge of published rows.
	hctx, hcancel := context.WithCancel(runCtx)
	var wg sync.WaitGroup
	defer func() { hcancel(); wg.Wait() }()
	wg.Go(func() { r.listen(hctx) })
	wg.Go(func() { r.probeLoop(hctx) })
	if r.cfg.Retention > 0 {
		wg.Go(func() { r.purgeLoop(hctx) })
	}
	errs := make(chan error, r.cfg.Workers)
	var wwg sync.WaitGroup
	for i := range r.cfg.Workers {
		wwg.Go(func() {
			w := r.newWorker(i)
			err := w.loop(runCtx, false, nil)
			if err != nil {
				cancel() // the others stop too
			}
			errs <- err
		})
	}
	wwg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if err != nil && first == nil {
			first = err
		}
	}
	if first != nil && ctx.Err() == nil {
		return first
	}
	return nil
}

// Drain publishes every row that is due now (rows in backoff or scheduled for later stay) with Config.Workers
// workers and returns how many rows the Publisher confirmed. Rows held by other relays are left to them. When
// ctx ends it finishes the batches in flight and returns the count so far with ctx's error.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	var n atomic.Int64
	errs := make([]error, r.cfg.Workers)
	var wg sync.WaitGroup
	for i := range r.cfg.Workers {
		wg.Go(func() {
			w := r.newWorker(i)
			errs[i] = w.loop(ctx, true, &n)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return int(n.Load()), err
	}
	return int(n.Load()), ctx.Err()
}

// idleWait is how long a worker waits after a pass that found nothing, given the previous wait. While any
// worker of the relay found rows within the last MaxPollInterval, messages are flowing: the wait stays at
// MinPollInterval (a worker that backed off on its own would add its whole wait to the latency of the next
// message), also with a listener, because producers notify at most once per outbox.Config.NotifyInterval and
// the messages between two notifications are found by polling. Only a quiet relay backs off; with a listener,
// straight to MaxPollInterval (the next message's notification wakes it).
func (r *Relay) idleWait(prev time.Duration) time.Duration {
	flowing := time.Since(time.Unix(0, r.active.Load())) < r.cfg.MaxPollInterval
	if r.listening.Load() > 0 {
		if flowing {
			return r.cfg.MinPollInterval
		}
		return r.cfg.MaxPollInterval // notifications wake us; polling only catches DeliverAt and backoff
	}
	if prev <= 0 || flowing {
		return r.cfg.MinPollInterval
	}
	return min(2*prev, r.cfg.MaxPollInterval)
}

// wakeup is a broadcast signal: C returns a channel that closes at the next wake.
type wakeup struct {
	mu sync.Mutex
	ch chan struct{}
}

func (w *wakeup) C() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *wakeup) broadcast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	close(w.ch)
	w.ch = make(chan struct{})
}
