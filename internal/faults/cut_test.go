package faults_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/faults"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// proxied puts a Proxy between a new pool and db's server. The pool keeps no idle connection, so that every
// operation dials through the proxy afresh.
func proxied(t *testing.T, db *testdb.DB) (*faults.Proxy, *sqlx.DB) {
	t.Helper()
	p, pdb, err := faults.Proxied(db.Dialect.Name(), db.Target.Driver, db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	t.Cleanup(func() { _ = pdb.Close() })
	pdb.SetMaxIdleConns(0)
	pdb.SetMaxOpenConns(20)
	return p, pdb
}

// A connection cut at each stage of inbox.Process (begin, recording the key, the handler's own statement,
// commit) gives an error that matches dialect.ErrConnection, and nothing is recorded: the next delivery runs the
// handler and commits once.
func TestInboxConnectionLossIsClassified(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		p, pdb := proxied(t, db)
		ib, err := inbox.New(pdb, inbox.Config{Dialect: db.Dialect, Consumer: "cut"})
		if err != nil {
			t.Fatal(err)
		}
		var runs sync.Map // key → handler runs that reached their own statement
		h := func(ctx context.Context, tx *sqlx.Tx) error {
			_, err := tx.ExecContext(ctx, "SELECT 1 /* faults-handler-statement */")
			return err
		}
		stages := []struct {
			name string
			arm  func()
		}{
			{"begin", func() { p.Refuse(true) }},
			{"claim", func() { p.CutOn("INSERT INTO") }},
			{"handler", func() { p.CutOn("faults-handler-statement") }},
			{"commit", func() { p.CutOn("commit") }},
		}
		for _, st := range stages {
			key := "key-" + st.name
			cuts := p.Cuts()
			st.arm()
			_, err := ib.Process(ctx, inbox.Delivery{Key: key, Payload: []byte("p")}, h)
			p.Refuse(false)
			p.CutOn("")
			if st.name != "begin" && p.Cuts() == cuts {
				t.Errorf("%s: the proxy cut nothing: the stage was never reached", st.name)
			}
			if !errors.Is(err, dialect.ErrConnection) {
				t.Errorf("%s cut: Process error %v (kind %d), want one matching dialect.ErrConnection", st.name, err,
					dialect.Classify(err))
			}
			res, err := ib.Process(ctx, inbox.Delivery{Key: key, Payload: []byte("p")}, h)
			if err != nil || res != inbox.Processed {
				t.Errorf("%s: redelivery after the cut = %v, %v; want Processed", st.name, res, err)
			}
			runs.Store(key, true)
		}
	})
}

// Connections cut at random while three relays drain through a proxy, with a publisher that takes a few
// milliseconds: every batch error the relays report matches dialect.ErrConnection, their Warn lines say
// connection_lost, every row is published, none twice at once, no sharding key overlaps or goes out of order.
func TestRelayConnectionLoss(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		p, pdb := proxied(t, db)
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		n := 600
		keys := make([]string, n)
		seq := map[string]int{}
		var msgs []outbox.Message
		for i := range n {
			keys[i] = "row-" + strconv.Itoa(i)
			m := outbox.Message{Topic: "t", Key: keys[i]}
			if i%2 == 0 {
				m.ShardingKey = "s-" + strconv.Itoa(i%40)
				m.Headers = map[string]string{faults.SeqHeader: strconv.Itoa(seq[m.ShardingKey])}
				seq[m.ShardingKey]++
			}
			msgs = append(msgs, m)
		}
		if err := ob.Enqueue(ctx, db, msgs...); err != nil {
			t.Fatal(err)
		}
		rec := faults.NewRecorder(nil)
		rec.MinDelay, rec.MaxDelay = time.Millisecond, 5*time.Millisecond
		logs := &lines{}
		var mu sync.Mutex
		var batchErrs []error
		var stops []func()
		for range 3 {
			r, err := relay.New(pdb, relay.Config{Dialect: db.Dialect, Publisher: rec, Workers: 2, BatchSize: 50,
				Lease: time.Second, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
				MinPollInterval: time.Millisecond, MaxPollInterval: 20 * time.Millisecond, Logger: slog.New(logs),
				OnBatch: func(b relay.BatchInfo) {
					if b.Err != nil {
						mu.Lock()
						batchErrs = append(batchErrs, b.Err)
						mu.Unlock()
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(rctx) }()
			stops = append(stops, func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		}
		cctx, stopCuts := context.WithCancel(ctx)
		cutsDone := make(chan struct{})
		go func() { p.CutEvery(cctx, 20*time.Millisecond, 60*time.Millisecond); close(cutsDone) }()
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		err = rec.WaitDistinct(wctx, n)
		cancel()
		stopCuts()
		<-cutsDone
		for _, s := range stops {
			s()
		}
		if err != nil {
			t.Fatal(err)
		}
		rep := rec.Report(keys)
		if rep.Lost != 0 || rep.ConcurrentRows != 0 || rep.ConcurrentKeys != 0 || len(rep.OrderErrors) != 0 {
			t.Errorf("report %+v", rep)
		}
		if p.Cuts() == 0 || len(batchErrs) == 0 {
			t.Fatalf("%d cuts, %d batch errors: the cuts missed the relays", p.Cuts(), len(batchErrs))
		}
		for _, err := range batchErrs {
			if !errors.Is(err, dialect.ErrConnection) {
				t.Errorf("batch error %v (kind %d) does not match dialect.ErrConnection", err, dialect.Classify(err))
			}
		}
		conn, other := logs.batchFailures()
		if conn == 0 || other != 0 {
			t.Errorf("Warn lines for failed batches: %d with connection_lost, %d without; want some and none", conn, other)
		}
		t.Logf("%d cuts, %d batch errors, %d publish calls, %d duplicates (published again after a lost finish)",
			p.Cuts(), len(batchErrs), rep.Calls, rep.Duplicates)
	}, testdb.MaxOpenConns(30))
}

// lines is a slog.Handler that keeps the relay's "batch failed" lines.
type lines struct {
	mu         sync.Mutex
	conn, othr int
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lines) WithGroup(string) slog.Handler            { return l }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "relay: batch failed" {
		return nil
	}
	lost := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "connection_lost" {
			lost = a.Value.Bool()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if lost {
		l.conn++
	} else {
		l.othr++
	}
	return nil
}

func (l *lines) batchFailures() (conn, other int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn, l.othr
}

var _ = fmt.Sprint
