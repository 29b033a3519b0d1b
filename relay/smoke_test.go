package relay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay/memory"
)

// Drain publishes every committed row once, each record carrying what was enqueued (payload, headers, tag,
// topic, first attempt, enqueue time), and leaves the outbox empty.
func TestDrainPublishesEverythingIntact(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		want := map[string]bool{}
		enqueueMany(t, db, newOutbox(t, db), 300, func(i int) outbox.Message {
			k := fmt.Sprintf("k-%d", i)
			want[k] = true
			m := outbox.Message{Topic: "t", Key: k, Tag: "tag", Payload: []byte(k), Headers: map[string]string{"h": k}}
			if i%3 == 0 {
				m.ShardingKey = fmt.Sprintf("s-%d", i%7)
			}
			return m
		})
		pub := memory.New()
		r := newRelay(t, db, pub, nil)
		n, err := r.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n != 300 || pub.Len() != 300 {
			t.Fatalf("Drain = %d, publisher has %d, want 300", n, pub.Len())
		}
		for _, rec := range pub.Records() {
			if !want[rec.Key] {
				t.Fatalf("record %q published twice, or never enqueued", rec.Key)
			}
			delete(want, rec.Key)
			if string(rec.Payload) != rec.Key || rec.Headers["h"] != rec.Key || rec.Tag != "tag" || rec.Topic != "t" || rec.Attempt != 1 {
				t.Fatalf("record %+v mangled", rec)
			}
			if time.Since(rec.CreatedAt) > time.Hour || time.Since(rec.CreatedAt) < -time.Hour {
				t.Fatalf("CreatedAt %v is off", rec.CreatedAt)
			}
		}
		if len(want) != 0 {
			t.Fatalf("%d enqueued keys never published", len(want))
		}
		if c := count(t, db, "txbox_outbox"); c != 0 {
			t.Fatalf("%d rows left", c)
		}
	})
}
