package main_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// status --json reports pending rows per topic, outbox dead letters, and inbox keys and parked messages per
// consumer, exactly.
func TestStatusJSON(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		bury(t, db, outbox.Message{Topic: "a", Key: "poison-a"}, outbox.Message{Topic: "b", Key: "poison-b"},
			outbox.Message{Topic: "b", Key: "poison-b2"})
		enqueue(t, db, outbox.Message{Topic: "a", Key: "a1"}, outbox.Message{Topic: "a", Key: "a2"},
			outbox.Message{Topic: "a", Key: "a3"}, outbox.Message{Topic: "b", Key: "b1"},
			outbox.Message{Topic: "b", Key: "b2"})
		process(t, db, "c1", "k1", "k2")
		park(t, db, "c1", inbox.Delivery{Key: "p1", Payload: []byte("x"), Topic: "a"})
		park(t, db, "c2", inbox.Delivery{Key: "p2", Payload: []byte("y"), Topic: "b"})

		r := run(t, db, nil, "status", "--json")
		if r.code != 0 {
			t.Fatalf("status: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		var st store.Stats
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, r.stdout)
		}
		if st.Outbox.OldestPendingAge <= 0 {
			t.Errorf("oldest pending age %s, want > 0", st.Outbox.OldestPendingAge)
		}
		st.Outbox.OldestPendingAge = 0
		want := store.Stats{
			Outbox: store.OutboxStats{Pending: 5, Due: 5, Dead: 3, Topics: []store.TopicStats{
				{Topic: "a", Pending: 3, Dead: 1}, {Topic: "b", Pending: 2, Dead: 2}}},
			// A parked message's key is recorded (as parked) with the others.
			Inbox: store.InboxStats{Keys: 4, Dead: 2, Consumers: []store.ConsumerStats{
				{Consumer: "c1", Keys: 3, Dead: 1}, {Consumer: "c2", Keys: 1, Dead: 1}}},
		}
		if !reflect.DeepEqual(st, want) {
			t.Fatalf("status:\n got %+v\nwant %+v\n%s", st, want, r.stdout)
		}
	})
}
