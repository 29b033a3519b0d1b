package main

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/faults"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
)

// downtime is how long a killed database stays down before it is started again.
const downtime = 2 * time.Second

// relays runs n relays, each on a pool of its own on dsn (as n processes would), until stop.
func (s *suite) relays(t target, dsn string, n int, edit func(*relay.Config)) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var pools []*sqlx.DB
	stop = func() {
		cancel()
		wg.Wait()
		for _, p := range pools {
			_ = p.Close()
		}
	}
	for i := range n {
		db, err := pool(t, dsn, 6)
		if err != nil {
			stop()
			return nil, err
		}
		pools = append(pools, db)
		cfg := relay.Config{Dialect: t.d, Workers: 2, BatchSize: 200, MinBackoff: 100 * time.Millisecond,
			MaxBackoff: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: s.logLevel()})).With("relay", i)}
		edit(&cfg)
		r, err := relay.New(db, cfg)
		if err != nil {
			stop()
			return nil, err
		}
		wg.Go(func() {
			if err := r.Run(ctx); err != nil {
				fmt.Fprintf(s.log, "relay %d: Run: %v\n", i, err)
			}
		})
	}
	return stop, nil
}

// fromRecorder fills a report's publish-side counts.
func fromRecorder(rep *report, rec *faults.Recorder, keys []string) {
	pr := rec.Report(keys)
	rep.keys, rep.published, rep.calls = len(keys), len(keys)-pr.Lost, pr.Calls
	rep.lost, rep.lostKeys = pr.Lost, pr.LostKeys
	rep.duplicates, rep.concRows, rep.concKeys, rep.orderErrors = pr.Duplicates, pr.ConcurrentRows, pr.ConcurrentKeys, pr.OrderErrors
	if pr.Duplicates > 0 {
		rep.dupCause = "the broker had confirmed them, but the batch could not record it (its finish failed with the " +
			"database or the connection); published again after their lease"
	}
}

// dbKillDrain: three relays drain a backlog while a producer keeps committing; the database is SIGKILLed at 30%
// and started again after downtime.
func (s *suite) dbKillDrain(ctx context.Context, t target) (*report, error) {
	n := s.opts.rows
	rep := newReport("db-kill-drain", t.name, fmt.Sprintf("3 relays drain %d rows while a producer commits; the "+
		"database is SIGKILLed at 30%% published and started again after %s", n, downtime))
	dsn, db, err := s.database(ctx, t, "drain")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	msgs, keys := messages("faults", "d", n)
	if err := enqueue(ctx, db, t.d, msgs); err != nil {
		return nil, err
	}
	rec := faults.NewRecorder(nil)
	rec.MaxDelay = 2 * time.Millisecond
	stop, err := s.relays(t, dsn, 3, func(c *relay.Config) { c.Publisher = rec })
	if err != nil {
		return nil, err
	}
	defer stop()
	prod := s.produce(t, dsn)
	if err := rec.WaitDistinct(ctx, n*3/10); err != nil {
		prod.stop()
		return nil, err
	}
	killed := time.Now()
	if err := s.stack.Kill(t.svc); err != nil {
		prod.stop()
		return nil, err
	}
	time.Sleep(downtime)
	if err := s.stack.Start(ctx, t.svc); err != nil {
		prod.stop()
		return nil, err
	}
	back := time.Now()
	time.Sleep(time.Second) // the producer commits a little more after the restart
	acked, unknown := prod.stop()
	want := append(append([]string(nil), keys...), acked...)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	waitErr := rec.WaitDistinct(wctx, len(want))
	emptyAt, err := waitCount(wctx, db, func(n int) bool { return n == 0 })
	if err == nil && waitErr == nil {
		rep.recoveryf("outbox empty %s after the database was back (it was down %s)", seconds(emptyAt.Sub(back)),
			seconds(back.Sub(killed)))
	} else {
		rep.failf("not drained: %v %v", waitErr, err)
	}
	stop()
	fromRecorder(rep, rec, want)
	published := 0
	for _, k := range unknown {
		if rec.Accepted(k) > 0 {
			published++
		}
	}
	if phantom := rec.Report(want).Extra - published; phantom != 0 {
		rep.failf("%d rows published that no committed transaction wrote", phantom)
	}
	rep.notef("producer: %d messages committed, %d with an unknown outcome (commit cut by the kill; %d of them had committed and were published)",
		len(acked), len(unknown), published)
	return rep, nil
}

// producer commits small transactions of unkeyed messages until stopped.
type producer struct {
	stop func() (acked, unknown []string)
}

func (s *suite) produce(t target, dsn string) producer {
	ctx, cancel := context.WithCancel(context.Background())
	var acked, unknown []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		db, err := pool(t, dsn, 2)
		if err != nil {
			return
		}
		defer db.Close()
		ob, _ := outbox.New(outbox.Config{Dialect: t.d})
		for i := 0; ctx.Err() == nil; i++ {
			var ks []string
			var msgs []outbox.Message
			for j := range 5 {
				k := "p" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
				ks = append(ks, k)
				msgs = append(msgs, outbox.Message{Topic: "faults", Key: k})
			}
			tx, err := db.BeginTx(ctx, nil)
			if err == nil {
				if err = ob.Enqueue(ctx, tx, msgs...); err != nil {
					_ = tx.Rollback()
				} else if err = tx.Commit(); err == nil {
					acked = append(acked, ks...)
				} else {
					unknown = append(unknown, ks...) // the commit may or may not have happened
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return producer{stop: func() ([]string, []string) { cancel(); <-done; return acked, unknown }}
}

// dbKillInbox: eight workers process deliveries through inbox.Process (a handler that writes one effect row) and
// redeliver what fails, and a third of the keys twice more after success; the database is SIGKILLed at 30%.
func (s *suite) dbKillInbox(ctx context.Context, t target) (*report, error) {
	n := s.opts.deliveries
	rep := newReport("db-kill-inbox", t.name, fmt.Sprintf("8 workers process %d keys (a third delivered again after "+
		"success); the database is SIGKILLed at 30%% processed and started again after %s", n, downtime))
	dsn, db, err := s.database(ctx, t, "inbox")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE faults_effects (msg_key VARCHAR(100) NOT NULL)"); err != nil {
		return nil, err
	}
	idb, err := pool(t, dsn, 12)
	if err != nil {
		return nil, err
	}
	defer idb.Close()
	ib, err := inbox.New(idb, inbox.Config{Dialect: t.d, Consumer: "faults", HandlerTimeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(s.log, nil))})
	if err != nil {
		return nil, err
	}
	insert := t.d.Rebind("INSERT INTO faults_effects (msg_key) VALUES (?)")
	handler := func(ctx context.Context, tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, insert, inboxKey(ctx))
		return err
	}
	type delivery struct {
		key   string
		again bool // a redelivery after success: must be a Duplicate
	}
	queue := make(chan delivery, 2*n)
	var pending atomic.Int64
	for i := range n {
		queue <- delivery{key: "i" + strconv.Itoa(i)}
		pending.Add(1)
	}
	var processed, dupes, calls atomic.Int64
	var mu sync.Mutex
	var connErrs, otherErrs int
	var samples []string
	done := make(chan struct{})
	var closeOnce sync.Once
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case d := <-queue:
					calls.Add(1)
					res, err := ib.Process(context.WithValue(ctx, keyCtx{}, d.key), inbox.Delivery{Key: d.key, Payload: []byte(d.key)}, handler)
					if err != nil {
						mu.Lock()
						if errors.Is(err, dialect.ErrConnection) {
							connErrs++
						} else {
							otherErrs++
							if len(samples) < 3 {
								samples = append(samples, err.Error())
							}
						}
						mu.Unlock()
						time.AfterFunc(20*time.Millisecond, func() { queue <- d }) // the broker redelivers
						continue
					}
					switch res {
					case inbox.Processed:
						processed.Add(1)
					case inbox.Duplicate:
						dupes.Add(1)
					}
					if !d.again && hash(d.key)%3 == 0 {
						pending.Add(1)
						queue <- delivery{key: d.key, again: true}
					}
					if pending.Add(-1) == 0 {
						closeOnce.Do(func() { close(done) })
					}
				}
			}
		})
	}
	for deadline := time.Now().Add(5 * time.Minute); processed.Load() < int64(n*3/10); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			closeOnce.Do(func() { close(done) })
			wg.Wait()
			return nil, fmt.Errorf("only %d keys processed before the kill", processed.Load())
		}
	}
	killed := time.Now()
	if err := s.stack.Kill(t.svc); err != nil {
		closeOnce.Do(func() { close(done) })
		wg.Wait()
		return nil, err
	}
	time.Sleep(downtime)
	if err := s.stack.Start(ctx, t.svc); err != nil {
		closeOnce.Do(func() { close(done) })
		wg.Wait()
		return nil, err
	}
	back := time.Now()
	select {
	case <-done:
		rep.recoveryf("every delivery acknowledged %s after the database was back (it was down %s)", since(back),
			seconds(back.Sub(killed)))
	case <-time.After(5 * time.Minute):
		closeOnce.Do(func() { close(done) })
		rep.failf("deliveries still pending 5 minutes after the restart")
	}
	wg.Wait()
	effects := map[string]int{}
	rows, err := db.QueryContext(ctx, "SELECT msg_key, COUNT(*) FROM faults_effects GROUP BY msg_key")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var k string
		var c int
		if err := rows.Scan(&k, &c); err != nil {
			rows.Close()
			return nil, err
		}
		effects[k] = c
	}
	rows.Close()
	rep.keys, rep.calls, rep.twice, rep.concNA = n, int(calls.Load()), 0, "no relay in this scenario"
	for i := range n {
		k := "i" + strconv.Itoa(i)
		switch c := effects[k]; {
		case c == 0:
			rep.lost++
			if len(rep.lostKeys) < 10 {
				rep.lostKeys = append(rep.lostKeys, k)
			}
		case c > 1:
			rep.twice++
		default:
			rep.published++
		}
	}
	rep.notef("%d Processed, %d Duplicate (redeliveries after success absorbed by the inbox)", processed.Load(), dupes.Load())
	rep.notef("Process errors: %d match dialect.ErrConnection, %d other %v", connErrs, otherErrs, samples)
	if otherErrs > 0 {
		rep.failf("%d Process errors during the outage do not match dialect.ErrConnection", otherErrs)
	}
	return rep, nil
}

type keyCtx struct{}

func inboxKey(ctx context.Context) string { k, _ := ctx.Value(keyCtx{}).(string); return k }

func hash(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// connReset: three relays reach the database through a proxy that resets a connection every 100-300 ms, with a
// publisher that takes 50-150 ms per record (issue 12: ~1,000 rows published twice at once before leases).
func (s *suite) connReset(ctx context.Context, t target) (*report, error) {
	n := s.opts.rows / 2
	rep := newReport("conn-reset", t.name, fmt.Sprintf("3 relays drain %d rows through a proxy resetting a connection "+
		"every 100-300 ms; each publish takes 50-150 ms", n))
	dsn, db, err := s.database(ctx, t, "reset")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	msgs, keys := messages("faults", "r", n)
	if err := enqueue(ctx, db, t.d, msgs); err != nil {
		return nil, err
	}
	addr, _, err := faults.Reroute(t.d.Name(), dsn, "127.0.0.1:1")
	if err != nil {
		return nil, err
	}
	p, err := faults.NewProxy(addr)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	_, pdsn, err := faults.Reroute(t.d.Name(), dsn, p.Addr())
	if err != nil {
		return nil, err
	}
	rec := faults.NewRecorder(nil)
	rec.MinDelay, rec.MaxDelay = 50*time.Millisecond, 150*time.Millisecond
	var batchErrs atomic.Int64
	started := time.Now()
	stop, err := s.relays(t, pdsn, 3, func(c *relay.Config) {
		// Small batches publishing slowly: most cuts land while a batch is publishing.
		c.Publisher, c.BatchSize, c.PublishConcurrency = rec, 100, 16
		c.OnBatch = func(b relay.BatchInfo) {
			if b.Err != nil {
				batchErrs.Add(1)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	defer stop()
	cctx, stopCuts := context.WithCancel(ctx)
	cuts := make(chan struct{})
	go func() { p.CutEvery(cctx, 100*time.Millisecond, 300*time.Millisecond); close(cuts) }()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	waitErr := rec.WaitDistinct(wctx, n)
	emptyAt, err := waitCount(wctx, db, func(n int) bool { return n == 0 })
	stopCuts()
	<-cuts
	stop()
	if waitErr != nil || err != nil {
		rep.failf("not drained: %v %v", waitErr, err)
	} else {
		rep.recoveryf("drained in %s under %d cuts (%d failed batches, all retried)", seconds(emptyAt.Sub(started)),
			p.Cuts(), batchErrs.Load())
	}
	fromRecorder(rep, rec, keys)
	return rep, nil
}

// brokerKill: two relays publish to a private RocketMQ broker that is SIGKILLed at 30% and started again after
// the outage; a consumer checks that every message arrived. A control run first drains the same backlog with
// nothing failing: its time from 30% to empty gives the normal drain rate of that part of the backlog, for the
// recovery target (2s + backlog when the broker is back / normal rate).
func (s *suite) brokerKill(ctx context.Context, t target, outage time.Duration) (*report, error) {
	n := s.opts.rows
	rep := newReport("broker-kill", t.name, fmt.Sprintf("2 relays publish %d rows to RocketMQ; the broker is "+
		"SIGKILLed at 30%% and started again after %s", n, outage))
	control, err := s.brokerDrain(ctx, t, "control", nil)
	if err != nil {
		return nil, fmt.Errorf("control run: %w", err)
	}
	control.close()
	rate := float64(control.backlog) / control.emptyAt.Sub(control.back).Seconds()
	probe, err := rocketmq.New(rocketmq.Config{NameServers: []string{s.namesrv}, Group: fmt.Sprintf("faults_probe_%d", time.Now().UnixNano()),
		SendTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(s.log, nil))})
	if err != nil {
		return nil, err
	}
	defer probe.Close()
	var killed time.Time
	var portOpen time.Duration
	var topic string
	run, err := s.brokerDrain(ctx, t, "broker", func(tp string) (time.Time, error) {
		topic = tp
		killed = time.Now()
		if err := s.stack.Kill(faults.RocketMQ); err != nil {
			return time.Time{}, err
		}
		time.Sleep(outage)
		// The broker is back when its port accepts connections again; the script's start returns later (it
		// waits for the broker to register with the name server, through a JVM of its own).
		started := make(chan error, 1)
		go func() { started <- s.stack.Start(ctx, faults.RocketMQ) }()
		actx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		accepted, err := accepting(actx, s.broker)
		if err != nil {
			select {
			case serr := <-started:
				return accepted, fmt.Errorf("the broker did not come back: %w (%w)", serr, err)
			default:
			}
			return accepted, err
		}
		s.restarting = started
		// Back is when the broker stores a message again, as a producer of its own sees it: a restarted broker
		// accepts connections a while before it serves.
		serving, err := serves(actx, probe, topic)
		portOpen = serving.Sub(accepted)
		return serving, err
	})
	if err != nil {
		return nil, err
	}
	defer run.close()
	if run.err != nil {
		rep.failf("not drained: %v", run.err)
	} else {
		took := run.emptyAt.Sub(run.back)
		target := 2*time.Second + time.Duration(float64(run.backlog)/rate*float64(time.Second))
		rep.recoveryf("outbox empty %s after the broker was back (target 2s + %d rows / %.0f rows/s = %s); broker down %s",
			seconds(took), run.backlog, rate, seconds(target), seconds(run.back.Sub(killed)))
		rep.notef("the broker was back when a producer of the suite stored a message again, %s after its port accepted connections",
			seconds(portOpen))
		rep.notef("normal drain rate: the control run drained its last %d rows in %s with nothing failing",
			control.backlog, seconds(control.emptyAt.Sub(control.back)))
		switch {
		case took <= target:
		case s.opts.strictRecovery:
			rep.failf("recovery took %s, over the target %s", seconds(took), seconds(target))
		default:
			rep.notef("recovery over the target (not enforced in this run)")
		}
	}
	if !run.opened.IsZero() && !run.closed.IsZero() {
		rep.recoveryf("breakers opened %s after the kill; the first closed %s after the broker was back (open %s), the other %s after",
			seconds(run.opened.Sub(killed)), seconds(run.closed.Sub(run.back)), seconds(run.closedOutage),
			seconds(run.lastClosed.Sub(run.back)))
	}
	if len(run.trace) > 0 {
		rep.notef("rows left after the broker was back: %s", strings.Join(run.trace, ", "))
	}
	if dead, err := count(ctx, run.db, "txbox_outbox_dead"); err != nil || dead != 0 {
		rep.failf("%d rows dead-lettered during the outage (%v)", dead, err)
	}
	col, err := s.collect(ctx, run.topic)
	if err != nil {
		return nil, err
	}
	defer col.close()
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Minute)
	defer ccancel()
	col.waitKeys(cctx, run.keys)
	lost, lostKeys, got, dups := col.tally(run.keys)
	pr := run.rec.Report(run.keys)
	rep.keys, rep.published, rep.calls = n, got, pr.Calls
	rep.lost, rep.lostKeys, rep.duplicates = lost, lostKeys, dups
	rep.concRows, rep.concKeys, rep.orderErrors = pr.ConcurrentRows, pr.ConcurrentKeys, pr.OrderErrors
	if dups > 0 {
		rep.dupCause = "sends cut by the kill whose message the broker had stored (lost confirms), and confirmed rows " +
			"whose batch ended before it could delete them; the consumer's inbox absorbs them"
	}
	rep.notef("counted by a consumer of the topic: %d keys received, %d stored more than once", got, dups)
	return rep, nil
}

// brokerRun is one drain of a backlog to the broker by two relays.
type brokerRun struct {
	topic   string
	keys    []string
	db      *sqlx.DB
	rec     *faults.Recorder
	backlog int       // rows left when the broker was back (or, without a fault, at 30%)
	back    time.Time // when the fault ended (or 30% were published)
	emptyAt time.Time
	err     error
	trace   []string // rows left, every second after back

	opened, closed time.Time // the first breaker (of the two relays) to open and to close
	lastClosed     time.Time // the other relay's breaker closing
	closedOutage   time.Duration
	close          func()
}

// brokerDrain enqueues the backlog on a fresh topic and database and drains it with two relays; at 30% it runs
// fault (nil: none), which returns when the broker is back.
func (s *suite) brokerDrain(ctx context.Context, t target, label string, fault func(topic string) (time.Time, error)) (*brokerRun, error) {
	n := s.opts.rows
	run := &brokerRun{topic: fmt.Sprintf("faults_%s_%d", label, time.Now().UnixNano())}
	var closers []func()
	run.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*brokerRun, error) { run.close(); return nil, err }
	if err := createTopic(ctx, s.namesrv, s.broker, run.topic, 4); err != nil {
		return fail(err)
	}
	dsn, db, err := s.database(ctx, t, label)
	if err != nil {
		return fail(err)
	}
	run.db = db
	closers = append(closers, func() { _ = db.Close() })
	msgs, keys := messages(run.topic, "b", n)
	run.keys = keys
	if err := enqueue(ctx, db, t.d, msgs); err != nil {
		return fail(err)
	}
	pub, err := rocketmq.New(rocketmq.Config{NameServers: []string{s.namesrv}, Group: run.topic + "_p",
		Logger: slog.New(slog.NewTextHandler(s.log, nil))})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, func() { _ = pub.Close() })
	run.rec = faults.NewRecorder(pub)
	var bmu sync.Mutex
	stop, err := s.relays(t, dsn, 2, func(c *relay.Config) {
		c.Publisher = run.rec
		c.OnBreaker = func(b relay.BreakerChange) {
			bmu.Lock()
			defer bmu.Unlock()
			switch {
			case b.Open && run.opened.IsZero():
				run.opened = time.Now()
			case !b.Open && run.closed.IsZero():
				run.closed, run.closedOutage = time.Now(), b.Outage
			case !b.Open:
				run.lastClosed = time.Now()
			}
		}
	})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, stop)
	if err := run.rec.WaitDistinct(ctx, n*3/10); err != nil {
		return fail(err)
	}
	run.back = time.Now()
	if fault != nil {
		if run.back, err = fault(run.topic); err != nil {
			return fail(err)
		}
	}
	run.backlog, _ = count(ctx, db, "txbox_outbox")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	next := run.back.Add(time.Second)
	run.emptyAt, run.err = waitCount(wctx, db, func(n int) bool {
		if now := time.Now(); now.After(next) {
			run.trace = append(run.trace, fmt.Sprintf("%s: %d", seconds(now.Sub(run.back)), n))
			next = next.Add(time.Second)
		}
		return n == 0
	})
	stop()
	if s.restarting != nil {
		<-s.restarting // the broker's start script, before anything else talks to the broker
		s.restarting = nil
	}
	bmu.Lock()
	defer bmu.Unlock()
	return run, nil
}

// collect starts a consumer of topic, retrying while the name server has no route for it: after a broker
// SIGKILL a topic created shortly before may be routed again only when the broker next registers.
func (s *suite) collect(ctx context.Context, topic string) (*collector, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		col, err := collect(s.namesrv, topic)
		if err == nil {
			return col, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, err
		}
		time.Sleep(2 * time.Second)
	}
}

// serves sends a message to topic every 20ms through pub until the broker stores one, and returns when it did.
// Its key is none of the scenario's, so the consumer's tally ignores it.
func serves(ctx context.Context, pub *rocketmq.Publisher, topic string) (time.Time, error) {
	for i := 0; ; i++ {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		err := pub.Publish(sctx, outbox.Record{ID: int64(i), Message: outbox.Message{Topic: topic, Key: "probe-" + strconv.Itoa(i)}})
		cancel()
		if err == nil {
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("the broker never stored a message again: %w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// accepting polls addr until it accepts a TCP connection and returns when it first did.
func accepting(ctx context.Context, addr string) (time.Time, error) {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return time.Now(), nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s never accepted a connection again: %w", addr, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// relayKill: `txbox relay` (the CLI, a process of its own) is SIGKILLed three times while it drains.
func (s *suite) relayKill(ctx context.Context, t target) (*report, error) {
	n := s.opts.rows
	kills := s.opts.relayKills
	rep := newReport("relay-kill", t.name, fmt.Sprintf("`txbox relay` drains %d rows to RocketMQ and is SIGKILLed %d "+
		"times, restarted at once", n, kills))
	bin, err := s.txboxBinary(ctx)
	if err != nil {
		return nil, err
	}
	topic := fmt.Sprintf("faults_%d", time.Now().UnixNano())
	if err := createTopic(ctx, s.namesrv, s.broker, topic, 4); err != nil {
		return nil, err
	}
	dsn, db, err := s.database(ctx, t, "kill")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	msgs, keys := messages(topic, "k", n)
	if err := enqueue(ctx, db, t.d, msgs); err != nil {
		return nil, err
	}
	// start runs txbox relay and returns once its /readyz answers 200 (it has its signal handlers by then).
	start := func() (*exec.Cmd, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		cmd := exec.Command(bin, "relay", "--dialect", t.d.Name(), "--namesrv", s.namesrv, "--group", topic+"_p",
			"--workers", "2", "--batch", "200", "--log-level", "warn", "--metrics-addr", addr)
		cmd.Env = append(os.Environ(), "TXBOX_DSN="+dsn)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // it dies with the suite
		cmd.Stdout, cmd.Stderr = s.log, s.log
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
			res, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				_ = res.Body.Close()
				if res.StatusCode == http.StatusOK {
					return cmd, nil
				}
			}
			if time.Now().After(deadline) {
				return cmd, fmt.Errorf("txbox relay not ready after a minute (last: %v)", err)
			}
		}
	}
	cmd, err := start()
	if err != nil {
		return nil, err
	}
	defer func() {
		if cmd != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	last := time.Now()
	for k := 1; k <= kills; k++ {
		left := n - n*k/(kills+1)
		if _, err := waitCount(wctx, db, func(c int) bool { return c <= left }); err != nil {
			return nil, err
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		before, _ := count(ctx, db, "txbox_outbox")
		restarted := time.Now()
		last = restarted
		if cmd, err = start(); err != nil {
			return nil, err
		}
		if before == 0 {
			rep.recoveryf("kill %d: the outbox was already empty", k)
			break
		}
		at, err := waitCount(wctx, db, func(c int) bool { return c < before })
		if err != nil {
			return nil, err
		}
		rep.recoveryf("kill %d at %d rows left: the restarted relay published again %s after the kill (the killed "+
			"relay's leased rows wait for their lease)", k, before, seconds(at.Sub(restarted)))
	}
	emptyAt, err := waitCount(wctx, db, func(c int) bool { return c == 0 })
	if err != nil {
		rep.failf("not drained: %v", err)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		rep.failf("txbox relay did not stop cleanly on SIGTERM: %v", err)
	}
	cmd = nil
	if err == nil {
		rep.recoveryf("outbox empty %s after the last restart", seconds(emptyAt.Sub(last)))
	}
	col, err := s.collect(ctx, topic)
	if err != nil {
		return nil, err
	}
	defer col.close()
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Minute)
	defer ccancel()
	col.waitKeys(cctx, keys)
	lost, lostKeys, got, dups := col.tally(keys)
	rep.keys, rep.published, rep.concNA = n, got, "the relay runs in a process of its own; one at a time"
	rep.lost, rep.lostKeys, rep.duplicates = lost, lostKeys, dups
	if dups > 0 {
		rep.dupCause = "rows of the killed relay's batches that the broker had accepted but the relay had not " +
			"deleted yet; published again once their lease ended (5s)"
	}
	if dead, err := count(ctx, db, "txbox_outbox_dead"); err != nil || dead != 0 {
		rep.failf("%d rows dead-lettered (%v)", dead, err)
	}
	return rep, nil
}
