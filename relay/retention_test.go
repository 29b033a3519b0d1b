package relay_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/partition"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

// With the partitioned published table, PurgePublished drops whole the partitions whose rows were all published
// longer than Retention ago, makes the partitions of the next periods, and keeps the rest; the relay's own
// statements (moving confirmed rows into the table) are the same as on the plain table.
func TestRetentionDropsPublishedPartitions(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ob := newOutbox(t, db)
		enqueueMany(t, db, ob, 30, func(i int) outbox.Message {
			return outbox.Message{Topic: "t", Key: "k" + strconv.Itoa(i), Payload: []byte("p")}
		})
		r := newRelay(t, db, memory.New(), func(c *relay.Config) { c.Retention = time.Hour })
		if n, err := r.Drain(ctx); err != nil || n != 30 {
			t.Fatalf("Drain = %d, %v; want 30", n, err)
		}
		// Ten rows published three hours ago.
		age := "UPDATE txbox_outbox_published SET published_at = published_at - INTERVAL 3 HOUR WHERE id IN (SELECT id FROM (SELECT id FROM txbox_outbox_published ORDER BY id LIMIT 10) AS x)"
		if db.Dialect.Name() == "postgres" {
			age = "UPDATE txbox_outbox_published SET published_at = published_at - INTERVAL '3 hours' WHERE id IN (SELECT id FROM txbox_outbox_published ORDER BY id LIMIT 10)"
		}
		if _, err := db.ExecContext(ctx, age); err != nil {
			t.Fatal(err)
		}
		if _, err := r.PurgePublished(ctx); err != nil {
			t.Fatalf("PurgePublished: %v", err)
		}
		if c := count(t, db, "txbox_outbox_published"); c != 20 {
			t.Fatalf("%d rows kept, want the 20 published within the hour", c)
		}
		// The next periods have their partitions: rows published now do not go to the catch-all.
		enqueueMany(t, db, ob, 5, func(i int) outbox.Message {
			return outbox.Message{Topic: "t", Key: "n" + strconv.Itoa(i), Payload: []byte("p")}
		})
		if n, err := r.Drain(ctx); err != nil || n != 5 {
			t.Fatalf("Drain = %d, %v; want 5", n, err)
		}
		catchAll := "txbox_outbox_published PARTITION (pmax)"
		if db.Dialect.Name() == "postgres" {
			catchAll = "txbox_outbox_published_default"
		}
		if c := count(t, db, catchAll); c != 0 {
			t.Errorf("%d rows in the catch-all partition, want 0", c)
		}
	}, testdb.Partitioned(true))
}

// An existing installation's published table converts while a relay keeps moving rows into it: the plain table
// is swapped for a partitioned one under its name, its rows are copied over, and none is lost or doubled.
func TestConvertPublishedWhileRelaying(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ob := newOutbox(t, db)
		enqueueMany(t, db, ob, 50, func(i int) outbox.Message {
			return outbox.Message{Topic: "t", Key: "before" + strconv.Itoa(i), Payload: []byte("p")}
		})
		r := newRelay(t, db, memory.New(), func(c *relay.Config) { c.Retention = time.Hour })
		if n, err := r.Drain(ctx); err != nil || n != 50 {
			t.Fatalf("Drain = %d, %v", n, err)
		}
		stop := runRelay(t, r)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 100 {
				enqueue(t, db, ob, outbox.Message{Topic: "t", Key: "during" + strconv.Itoa(i), Payload: []byte("p")})
			}
		}()
		tables, _ := dialect.TablesFor("")
		s, err := store.New(db.Dialect, tables)
		if err != nil {
			t.Fatal(err)
		}
		if err := partition.ConvertPublished(ctx, db.DB.DB, s, partition.Config{Retention: time.Hour}, 7, nil); err != nil {
			t.Fatalf("ConvertPublished: %v", err)
		}
		<-done
		waitUntil(t, 30*time.Second, "the relay publishing every row", func() bool { return count(t, db, "txbox_outbox") == 0 })
		stop()
		if c := count(t, db, "txbox_outbox_published"); c != 150 {
			t.Errorf("%d published rows kept, want 150 (50 before, 100 during)", c)
		}
		var distinct int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(DISTINCT id) FROM txbox_outbox_published").Scan(&distinct); err != nil || distinct != 150 {
			t.Errorf("%d distinct ids (%v), want 150", distinct, err)
		}
		if old, err := s.PublishedOldExists(ctx, db); err != nil || old {
			t.Errorf("the plain table is still there: %v, %v", old, err)
		}
		if st, err := s.PartitionState(ctx, db, store.PublishedTable); err != nil || st.Mode != store.Partitioned {
			t.Errorf("published layout %+v, %v", st, err)
		}
	}, testdb.Partitioned(false))
}
