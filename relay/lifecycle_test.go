package relay_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

// Run's ctx ends while a batch is being published: the batch finishes (published rows deleted), Run returns
// nil, and nothing is lost.
func TestStopMidBatch(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob := newOutbox(t, db)
		var keys []string
		enqueueMany(t, db, ob, 200, func(i int) outbox.Message {
			keys = append(keys, "k-"+strconv.Itoa(i))
			return outbox.Message{Topic: "t", Key: keys[i]}
		})
		entered := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		pub := newTestPub(0, 0)
		pub.block = func(outbox.Record) {
			once.Do(func() { close(entered) })
			<-release
		}
		r := newRelay(t, db, pub, func(c *relay.Config) { c.Workers = 1; c.BatchSize = 50 })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		<-entered
		cancel() // mid-batch
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
		left := count(t, db, "txbox_outbox")
		if left != 150 {
			t.Fatalf("%d rows left after the stopped batch, want 150 (the in-flight batch of 50 finished)", left)
		}
		r2 := newRelay(t, db, pub, nil)
		if _, err := r2.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		pub.check(t, keys)
	})
}

const childEnv = "TXBOX_RELAY_TEST_CHILD"

// A relay process killed (SIGKILL) while its publisher blocks mid-batch loses nothing: its rows stay leased
// until their lease ends (Config.Lease, 5s by default), then another relay publishes them.
func TestKilledMidBatch(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob := newOutbox(t, db)
		var keys []string
		enqueueMany(t, db, ob, 300, func(i int) outbox.Message {
			keys = append(keys, "k-"+strconv.Itoa(i))
			m := outbox.Message{Topic: "t", Key: keys[i]}
			if i%2 == 0 {
				m.ShardingKey = "s-" + strconv.Itoa(i%20)
				m.Headers = map[string]string{"seq": strconv.Itoa(i / 20)}
			}
			return m
		})
		cmd := exec.Command(os.Args[0], "-test.run=^TestRelayChild$", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"=1", "CHILD_DSN="+db.DSN, "CHILD_DRIVER="+db.Target.Driver,
			"CHILD_DIALECT="+db.Dialect.Name())
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		childPublished := map[string]bool{}
		sc := bufio.NewScanner(stdout)
		blocked := false
		for sc.Scan() {
			line := sc.Text()
			if k, ok := strings.CutPrefix(line, "PUBLISHED "); ok {
				childPublished[k] = true
			}
			if line == "BLOCKED" {
				blocked = true
				break
			}
		}
		if !blocked {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("child never blocked: %v", sc.Err())
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if len(childPublished) == 0 {
			t.Fatal("child published nothing before blocking")
		}
		// The killed relay's batch never finished: its rows, published or not, are still there.
		if c := count(t, db, "txbox_outbox"); c != 300 {
			t.Fatalf("%d rows in the outbox after the kill, want all 300", c)
		}
		pub := newTestPub(0, 0)
		waitUntil(t, 30*time.Second, "rows whose lease the dead relay held", func() bool {
			if _, err := newRelay(t, db, pub, nil).Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			return pub.distinct() == len(keys)
		})
		pub.check(t, keys)
		t.Logf("the killed relay had published %d rows of its batch; they were published again", len(childPublished))
	})
}

// TestRelayChild is the subprocess of TestKilledMidBatch: it runs a relay whose publisher accepts 20 records,
// prints them, then announces BLOCKED and blocks until killed.
func TestRelayChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("subprocess of TestKilledMidBatch")
	}
	d, err := dialect.Parse(os.Getenv("CHILD_DIALECT"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlx.Open(os.Getenv("CHILD_DRIVER"), os.Getenv("CHILD_DSN"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	pub := relay.PublisherFunc(func(ctx context.Context, r outbox.Record) error {
		mu.Lock()
		n++
		if n > 20 {
			if n == 21 {
				fmt.Println("BLOCKED")
			}
			mu.Unlock()
			select {} // until SIGKILL
		}
		fmt.Println("PUBLISHED " + r.Key)
		mu.Unlock()
		return nil
	})
	r, err := relay.New(db, relay.Config{Dialect: d, Publisher: pub, Workers: 1, BatchSize: 100, PublishConcurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Run(context.Background())
}

// Invariant 7: a poison row is retried with backoff, parked in the dead-letter table with its payload and last
// error after MaxAttempts, unblocks its sharding key, and can be listed, requeued and dropped.
func TestPoisonDeadLetters(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ob := newOutbox(t, db)
		enqueue(t, db, ob,
			outbox.Message{Topic: "t", Key: "poison", ShardingKey: "s", Payload: []byte("p1"), Headers: map[string]string{"a": "b"}},
			outbox.Message{Topic: "t", Key: "after-poison", ShardingKey: "s"},
			outbox.Message{Topic: "t", Key: "poison-2", Payload: []byte("p2")},
			outbox.Message{Topic: "t", Key: "permanent"})
		poisoned := true
		var attempts []int
		pub := memory.New()
		pub.Fail = func(r outbox.Record) error {
			switch {
			case r.Key == "permanent":
				return fmt.Errorf("too large: %w", relay.ErrPermanent)
			case poisoned && strings.HasPrefix(r.Key, "poison"):
				if r.Key == "poison" {
					attempts = append(attempts, r.Attempt)
				}
				return errors.New("broker says no")
			}
			return nil
		}
		r := newRelay(t, db, pub, func(c *relay.Config) { c.MaxAttempts = 3; c.Workers = 1 })
		waitUntil(t, 30*time.Second, "poison rows parked", func() bool {
			if _, err := r.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			return count(t, db, "txbox_outbox_dead") == 3
		})
		if fmt.Sprint(attempts) != "[1 2 3]" {
			t.Errorf("poison attempts %v, want [1 2 3]", attempts)
		}
		if c := count(t, db, "txbox_outbox"); c != 0 {
			t.Fatalf("%d rows left in the outbox", c)
		}
		if pub.Len() != 1 || pub.Records()[0].Key != "after-poison" {
			t.Fatalf("published %v, want only after-poison (its key unblocked when poison was parked)", pub.Records())
		}
		dead, err := ob.DeadLetters(ctx, db, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 3 {
			t.Fatalf("%d dead letters, want 3", len(dead))
		}
		byKey := map[string]outbox.DeadLetter{}
		for _, d := range dead {
			byKey[d.Key] = d
		}
		p := byKey["poison"]
		if string(p.Payload) != "p1" || p.Headers["a"] != "b" || p.ShardingKey != "s" || p.Attempt != 3 ||
			p.LastError != "broker says no" || p.DeadAt.IsZero() {
			t.Fatalf("dead letter %+v", p)
		}
		if pm := byKey["permanent"]; pm.Attempt != 1 || !strings.Contains(pm.LastError, "too large") {
			t.Fatalf("permanent failure %+v: want parked after 1 attempt", pm)
		}
		poisoned = false
		n, err := ob.Requeue(ctx, db, p.ID, byKey["poison-2"].ID, 999999)
		if err != nil || n != 2 {
			t.Fatalf("Requeue = %d, %v; want 2", n, err)
		}
		if n, err := ob.Drop(ctx, db, byKey["permanent"].ID); err != nil || n != 1 {
			t.Fatalf("Drop = %d, %v; want 1", n, err)
		}
		if c := count(t, db, "txbox_outbox_dead"); c != 0 {
			t.Fatalf("%d dead letters left", c)
		}
		if n, err := r.Drain(ctx); err != nil || n != 2 {
			t.Fatalf("Drain after requeue = %d, %v; want 2", n, err)
		}
		for _, rec := range pub.Records()[1:] {
			if rec.Attempt != 1 {
				t.Fatalf("requeued record %s has Attempt %d, want 1", rec.Key, rec.Attempt)
			}
		}
	})
}

// DeliverAt delays a row; a row of the same sharding key behind it waits too.
func TestDeliverAt(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob := newOutbox(t, db)
		enqueue(t, db, ob,
			outbox.Message{Topic: "t", Key: "later", DeliverAt: time.Now().Add(time.Hour)},
			outbox.Message{Topic: "t", Key: "later-keyed", ShardingKey: "s", DeliverAt: time.Now().Add(time.Hour)},
			outbox.Message{Topic: "t", Key: "behind-later", ShardingKey: "s"},
			outbox.Message{Topic: "t", Key: "past", DeliverAt: time.Now().Add(-time.Hour)},
			outbox.Message{Topic: "t", Key: "now"})
		pub := memory.New()
		n, err := newRelay(t, db, pub, nil).Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 || count(t, db, "txbox_outbox") != 3 {
			t.Fatalf("Drain = %d (%v), want 2: the past and the undelayed row", n, pub.Records())
		}
	})
}

// On PostgreSQL with pgx a relay wakes on NOTIFY: with a one-minute poll interval, a committed row is still
// published at once.
func TestNotifyWakesRelay(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		if db.Target.Driver != "pgx" {
			t.Skip("notifications reach idle connections only through pgx")
		}
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect, NotifyInterval: -1}) // every Enqueue notifies
		if err != nil {
			t.Fatal(err)
		}
		pub := memory.New()
		r := newRelay(t, db, pub, func(c *relay.Config) { c.MinPollInterval, c.MaxPollInterval = time.Minute, time.Minute })
		runRelay(t, r)
		// Let the relay settle into its idle wait: the first pass (and the listener's catch-up wake) find nothing.
		for i := range 3 {
			enqueue(t, db, ob, outbox.Message{Topic: "t", Key: "k" + strconv.Itoa(i)})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := pub.WaitLen(ctx, i+1)
			cancel()
			if err != nil {
				t.Fatalf("row %d not published within 20s with a 1-minute poll: %v", i, err)
			}
		}
	})
}

// Producers notify at most once per NotifyInterval; a relay that is publishing finds the messages that came
// without a notification by polling every MinPollInterval, although its MaxPollInterval is an hour: with a
// notification interval of an hour, only the first message notifies, and all of them are published. (End to
// end; whether a message arrives while the relay is still in its passes or already waiting depends on timing,
// so TestIdleWait pins the wait itself.)
func TestMessagesWithoutNotificationWhileFlowing(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		if db.Target.Driver != "pgx" {
			t.Skip("notifications reach idle connections only through pgx")
		}
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect, NotifyInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		pub := memory.New()
		r := newRelay(t, db, pub, func(c *relay.Config) { c.MinPollInterval, c.MaxPollInterval = 5*time.Millisecond, time.Hour })
		runRelay(t, r)
		// Until its LISTEN runs, the relay polls every MinPollInterval whatever happens: wait for it.
		waitUntil(t, 30*time.Second, "the relay's LISTEN", func() bool {
			var n int
			err := db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM pg_stat_activity"+
				" WHERE datname = current_database() AND query LIKE 'LISTEN %'").Scan(&n)
			return err == nil && n > 0
		})
		for i := range 3 {
			enqueue(t, db, ob, outbox.Message{Topic: "t", Key: "k" + strconv.Itoa(i)})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			err := pub.WaitLen(ctx, i+1)
			cancel()
			if err != nil {
				t.Fatalf("row %d not published within 20s with a 1-hour poll: %v", i, err)
			}
		}
	})
}

// An unmigrated database gives errors wrapping dialect.ErrSchemaMissing from Enqueue, Drain and Run.
func TestSchemaMissing(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ob := newOutbox(t, db)
		err := ob.Enqueue(ctx, db, outbox.Message{Topic: "t", Key: "k"})
		if !errors.Is(err, dialect.ErrSchemaMissing) {
			t.Fatalf("Enqueue: %v, want ErrSchemaMissing", err)
		}
		r := newRelay(t, db, memory.New(), nil)
		if _, err := r.Drain(ctx); !errors.Is(err, dialect.ErrSchemaMissing) {
			t.Fatalf("Drain: %v, want ErrSchemaMissing", err)
		}
		if err := r.Run(ctx); !errors.Is(err, dialect.ErrSchemaMissing) {
			t.Fatalf("Run: %v, want ErrSchemaMissing", err)
		}
	}, testdb.Unmigrated())
}

// PublishTimeout bounds a batch's publishing as a whole: a Publish call that hangs is cut off at the batch's
// deadline, and the rows the batch had not started by then stay untouched (no attempt counted), so the next
// batch publishes them as first attempts.
func TestPublishTimeoutBoundsTheBatch(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ob := newOutbox(t, db)
		enqueueMany(t, db, ob, 5, func(i int) outbox.Message { return outbox.Message{Topic: "t", Key: "k" + strconv.Itoa(i)} })
		var hung string // the key of the batch's first call, which hangs until the deadline
		var mu sync.Mutex
		pub := memory.New()
		inner := relay.PublisherFunc(func(ctx context.Context, r outbox.Record) error {
			mu.Lock()
			first := hung == ""
			if first {
				hung = r.Key
			}
			mu.Unlock()
			if first {
				<-ctx.Done()
				return ctx.Err()
			}
			return pub.Publish(ctx, r)
		})
		var first relay.BatchInfo
		var batches atomic.Int32
		r := newRelay(t, db, inner, func(c *relay.Config) {
			c.Workers, c.PublishConcurrency, c.PublishTimeout = 1, 1, 200*time.Millisecond
			c.OnBatch = func(b relay.BatchInfo) {
				if batches.Add(1) == 1 {
					first = b
				}
			}
		})
		if _, err := r.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		if first.Claimed != 5 || first.Failed != 1 || first.Held != 4 || first.Published != 0 {
			t.Fatalf("first batch %+v, want 5 claimed, 1 failed (cut off), 4 held", first)
		}
		waitUntil(t, 30*time.Second, "every row published", func() bool {
			if _, err := r.Drain(ctx); err != nil {
				t.Fatal(err)
			}
			return pub.Len() == 5
		})
		for _, rec := range pub.Records() {
			want := 1
			if rec.Key == hung {
				want = 2 // the row whose call was cut off comes back as its second attempt
			}
			if rec.Attempt != want {
				t.Errorf("%s published as attempt %d, want %d", rec.Key, rec.Attempt, want)
			}
		}
	})
}

// With Retention, confirmed rows move to the published table (intact, with the time of publishing) instead of
// being deleted; PurgePublished deletes only those published longer than Retention ago, and Run purges on its
// own.
func TestRetentionKeepsPublishedRows(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ob := newOutbox(t, db)
		enqueueMany(t, db, ob, 30, func(i int) outbox.Message {
			m := outbox.Message{Topic: "t", Key: "k" + strconv.Itoa(i), Payload: []byte("p" + strconv.Itoa(i))}
			if i%2 == 0 {
				m.ShardingKey = "s" + strconv.Itoa(i%3)
				m.Headers = map[string]string{"h": "v"}
			}
			return m
		})
		pub := memory.New()
		r := newRelay(t, db, pub, func(c *relay.Config) { c.Retention = time.Hour })
		if n, err := r.Drain(ctx); err != nil || n != 30 {
			t.Fatalf("Drain = %d, %v; want 30", n, err)
		}
		if c := count(t, db, "txbox_outbox"); c != 0 {
			t.Fatalf("%d rows left in the outbox", c)
		}
		if c := count(t, db, "txbox_outbox_published"); c != 30 {
			t.Fatalf("%d rows kept in txbox_outbox_published, want 30", c)
		}
		var kept struct {
			Key     string `db:"msg_key"`
			Payload []byte `db:"payload"`
			Sharded string `db:"sharding_key"`
		}
		if err := db.GetContext(ctx, &kept, db.Rebind("SELECT msg_key, payload, sharding_key FROM txbox_outbox_published WHERE msg_key = ?"), "k4"); err != nil {
			t.Fatal(err)
		}
		if string(kept.Payload) != "p4" || kept.Sharded != "s1" {
			t.Fatalf("kept row %+v, want payload p4 and sharding key s1", kept)
		}
		// published_at is the time of publishing: within this test's run, as the database's clock says.
		recent := "SELECT COUNT(*) FROM txbox_outbox_published WHERE published_at > UTC_TIMESTAMP(6) - INTERVAL 1 HOUR"
		if db.Dialect.Name() == "postgres" {
			recent = "SELECT COUNT(*) FROM txbox_outbox_published WHERE published_at > now() - INTERVAL '1 hour'"
		}
		var n int
		if err := db.QueryRowContext(ctx, recent).Scan(&n); err != nil || n != 30 {
			t.Fatalf("%d rows published within the last hour (%v), want 30", n, err)
		}
		if n, err := r.PurgePublished(ctx); err != nil || n != 0 {
			t.Fatalf("PurgePublished = %d, %v; want 0 (nothing older than an hour)", n, err)
		}
		// Age ten rows past the retention window.
		age := "UPDATE txbox_outbox_published SET published_at = published_at - INTERVAL 2 HOUR WHERE id IN (SELECT id FROM (SELECT id FROM txbox_outbox_published ORDER BY id LIMIT 10) AS x)"
		if db.Dialect.Name() == "postgres" {
			age = "UPDATE txbox_outbox_published SET published_at = published_at - INTERVAL '2 hours' WHERE id IN (SELECT id FROM txbox_outbox_published ORDER BY id LIMIT 10)"
		}
		if _, err := db.ExecContext(ctx, age); err != nil {
			t.Fatal(err)
		}
		if n, err := r.PurgePublished(ctx); err != nil || n != 10 {
			t.Fatalf("PurgePublished = %d, %v; want the 10 aged rows", n, err)
		}
		if c := count(t, db, "txbox_outbox_published"); c != 20 {
			t.Fatalf("%d rows kept after the purge, want 20", c)
		}

		// Run purges by itself: with a short Retention everything goes.
		fast := newRelay(t, db, pub, func(c *relay.Config) { c.Retention = 50 * time.Millisecond })
		stop := runRelay(t, fast)
		waitUntil(t, 30*time.Second, "Run purging the published table", func() bool {
			return count(t, db, "txbox_outbox_published") == 0
		})
		stop()
	})
}
