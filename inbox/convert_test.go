package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/partition"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/testdb"
)

// An existing installation converts to the partitioned layout with traffic running, including a process that
// still records keys the old way until it is upgraded: keys recorded before the switch stay duplicates all
// along, every key shared by two concurrent workers has exactly one effect, finishing is refused while the old
// process writes, and keys are found in whichever table they were recorded in afterwards.
func TestConvertWithTraffic(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		createEffects(t, db)
		const c, before = "conv", 200
		refresh, settle := 50*time.Millisecond, time.Second
		mk := func() *inbox.Inbox {
			ib := newInbox(t, db, c, inbox.Config{})
			inbox.SetLayoutRefresh(ib, refresh)
			return ib
		}
		recordKeys(t, mk(), "before", before)

		type worker struct {
			ib        *inbox.Inbox
			stop      chan struct{}
			done      chan error
			processed atomic.Int64
			dups      atomic.Int64
		}
		// Two workers per group process the same keys ("shared-<group>-<i>") at the same time; each also
		// redelivers a key recorded before the conversion every round.
		var phase atomic.Int32
		var perPhase [3]atomic.Int64
		start := func(ib *inbox.Inbox, group string) *worker {
			w := &worker{ib: ib, stop: make(chan struct{}), done: make(chan error, 1)}
			go func() {
				defer close(w.done)
				for i := 0; ; i++ {
					select {
					case <-w.stop:
						return
					default:
					}
					k := fmt.Sprintf("shared-%s-%d", group, i)
					res, err := ib.Process(ctx, inbox.Delivery{Key: k, Payload: []byte("p")}, effectHandler(db, c, k))
					if err != nil {
						w.done <- fmt.Errorf("%s: %w", k, err)
						return
					}
					if res == inbox.Processed {
						w.processed.Add(1)
					}
					old := fmt.Sprintf("before-%d", i%before)
					if res, err := ib.Process(ctx, inbox.Delivery{Key: old, Payload: []byte("p")}, effectHandler(db, c, old)); err != nil || res != inbox.Duplicate {
						w.done <- fmt.Errorf("%s, recorded before the conversion, redelivered in phase %d: %v, %v", old, phase.Load(), res, err)
						return
					}
					w.dups.Add(1)
					perPhase[phase.Load()].Add(1)
				}
			}()
			return w
		}
		waitRounds := func(ws []*worker, n int64) {
			t.Helper()
			deadline := time.Now().Add(60 * time.Second)
			for _, w := range ws {
				for goal := w.dups.Load() + n; w.dups.Load() < goal; {
					select {
					case err := <-w.done:
						t.Fatalf("worker stopped: %v", err)
					default:
					}
					if time.Now().After(deadline) {
						t.Fatal("workers made no progress")
					}
					time.Sleep(5 * time.Millisecond) // the workers assert on their own; this waits for rounds
				}
			}
		}
		stopAll := func(ws ...*worker) {
			t.Helper()
			for _, w := range ws {
				close(w.stop)
				if err := <-w.done; err != nil {
					t.Fatal(err)
				}
			}
		}

		// An old process and a new one share group a (the old one also has keys of its own, group o); two new
		// ones share group b.
		old := mk()
		inbox.SetUnpartitioned(old)
		ws := []*worker{start(old, "a"), start(old, "o"), start(mk(), "a"), start(mk(), "b"), start(mk(), "b")}
		waitRounds(ws, 20)

		tables, _ := dialect.TablesFor("")
		s, err := store.New(db.Dialect, tables)
		if err != nil {
			t.Fatal(err)
		}
		// finish polls until the settle time has passed, as an operator would try again.
		finish := func() error {
			for {
				err := partition.ConvertInboxFinish(ctx, db.DB.DB, s, settle)
				if !errors.Is(err, partition.ErrTooEarly) {
					return err
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		phase.Store(1)
		if _, err := partition.ConvertInboxStart(ctx, db.DB.DB, s, partition.Config{Retention: inbox.DefaultRetention}); err != nil {
			t.Fatalf("start: %v", err)
		}
		if err := partition.ConvertInboxFinish(ctx, db.DB.DB, s, time.Hour); !errors.Is(err, partition.ErrTooEarly) {
			t.Fatalf("finish within the settle time: %v, want ErrTooEarly", err)
		}
		waitRounds(ws, 20)
		if err := finish(); !errors.Is(err, partition.ErrLegacyWriters) {
			t.Fatalf("finish while the old process writes: %v, want ErrLegacyWriters", err)
		}
		stopAll(ws[0], ws[1]) // the old process is upgraded
		ws = ws[2:]
		upgraded := time.Now()
		for {
			// Refused as long as keys recorded the old way are younger than the settle time.
			err := finish()
			if err == nil {
				break
			}
			if !errors.Is(err, partition.ErrLegacyWriters) || time.Since(upgraded) > 30*settle {
				t.Fatalf("finish after the upgrade: %v", err)
			}
			waitRounds(ws, 1)
		}
		phase.Store(2)
		time.Sleep(2 * refresh) // every Inbox reads the new layout
		waitRounds(ws, 40)
		stopAll(ws...)

		if st, err := s.PartitionState(ctx, db, store.InboxKeysTable); err != nil || st.Mode != store.Partitioned {
			t.Fatalf("layout after finish: %+v, %v", st, err)
		}
		var twice int
		q := "SELECT COUNT(*) FROM (SELECT k FROM effects WHERE consumer = ? GROUP BY k HAVING COUNT(*) > 1) AS x"
		if twice = countRows(t, db, q, c); twice != 0 {
			t.Errorf("%d keys with more than one effect", twice)
		}
		if n := countRows(t, db, "SELECT COUNT(*) FROM effects WHERE k LIKE 'before-%'"); n != 0 {
			t.Errorf("%d effects of keys recorded before the conversion", n)
		}
		// Keys of every phase, in either table, are duplicates now.
		ib := mk()
		for _, k := range []string{"before-0", "shared-a-0", "shared-o-0", "shared-b-0", "shared-a-25", "shared-b-30"} {
			if res, err := ib.Process(ctx, inbox.Delivery{Key: k, Payload: []byte("p")}, effectHandler(db, c, k)); err != nil || res != inbox.Duplicate {
				t.Errorf("%s after the conversion: %v, %v; want duplicate", k, res, err)
			}
		}
		shared := countRows(t, db, "SELECT COUNT(DISTINCT k) FROM effects WHERE consumer = ?", c)
		t.Logf("%s: keys recorded before: %d, all duplicates; redeliveries of them per phase (before, converting, "+
			"partitioned): %d, %d, %d; shared keys processed: %d, each with one effect; in %s: %d, in %s: %d",
			db.Target.Name, before, perPhase[0].Load(), perPhase[1].Load(), perPhase[2].Load(), shared,
			"txbox_inbox", countRows(t, db, "SELECT COUNT(*) FROM txbox_inbox"),
			"txbox_inbox_keys", countRows(t, db, "SELECT COUNT(DISTINCT msg_key) FROM txbox_inbox_keys"))
	}, testdb.Partitioned(false), testdb.MaxOpenConns(30))
}
