package main_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

type listed struct {
	Box      string            `json:"box"`
	ID       int64             `json:"id"`
	Consumer string            `json:"consumer"`
	Topic    string            `json:"topic"`
	Key      string            `json:"key"`
	Payload  []byte            `json:"payload"`
	Headers  map[string]string `json:"headers"`
	Error    string            `json:"last_error"`
}

func listDead(t *testing.T, db *testdb.DB, args ...string) []listed {
	t.Helper()
	r := run(t, db, nil, append([]string{"dead", "list", "--json"}, args...)...)
	if r.code != 0 {
		t.Fatalf("dead list %v: code %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	var out []listed
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("dead list --json: %v\n%s", err, r.stdout)
	}
	return out
}

// Dead letters are listed, dry runs change nothing, drop removes exactly the selection, and an inbox requeue
// moves the parked message into the outbox and frees its key (the broker half is in TestRelay...).
func TestDeadListDryRunDropAndInboxRequeue(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		bury(t, db, outbox.Message{Topic: "a", Key: "o1"}, outbox.Message{Topic: "a", Key: "o2"})
		park(t, db, "c1", inbox.Delivery{Key: "p1", Payload: []byte("one"), Topic: "t1", Headers: map[string]string{"h": "v"}})
		park(t, db, "c2", inbox.Delivery{Key: "p2", Payload: []byte("two"), Topic: "t2"})

		ob := listDead(t, db, "--outbox")
		if len(ob) != 2 || ob[0].Key != "o1" || ob[1].Key != "o2" || !strings.Contains(ob[0].Error, "broker says no") || ob[0].Payload != nil {
			t.Fatalf("outbox dead letters: %+v", ob)
		}
		ib := listDead(t, db, "--inbox", "--payload")
		if len(ib) != 2 || ib[0].Consumer != "c1" || string(ib[0].Payload) != "one" || ib[0].Headers["h"] != "v" || ib[1].Consumer != "c2" {
			t.Fatalf("inbox dead letters: %+v", ib)
		}
		if one := listDead(t, db, "--inbox", "--consumer", "c2"); len(one) != 1 || one[0].Key != "p2" {
			t.Fatalf("--consumer c2: %+v", one)
		}
		r := run(t, db, nil, "dead", "list", "--outbox")
		if r.code != 0 || !strings.Contains(r.stdout, "LAST ERROR") || !strings.Contains(r.stdout, "o2") {
			t.Fatalf("dead list table: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}

		// Dry runs print the selection and change nothing.
		for _, args := range [][]string{{"requeue", "--outbox", "--all"}, {"drop", "--outbox", "--key", "o1"},
			{"requeue", "--inbox", "--all"}, {"drop", "--inbox", "--consumer", "c1", "--key", "p1"}} {
			r := run(t, db, nil, append(append([]string{"dead"}, args...), "--dry-run")...)
			if r.code != 0 || !strings.Contains(r.stdout, "dry run: would") {
				t.Fatalf("%v --dry-run: code %d\n%s%s", args, r.code, r.stdout, r.stderr)
			}
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox_dead"); n != 2 {
			t.Fatalf("dry runs left %d outbox dead letters, want 2", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_inbox_dead"); n != 2 {
			t.Fatalf("dry runs left %d inbox dead letters, want 2", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox"); n != 0 {
			t.Fatalf("dry runs enqueued %d rows", n)
		}

		// An unknown id fails before anything changes.
		r = run(t, db, nil, "dead", "drop", "--outbox", "--id", itoa(ob[0].ID), "--id", "999999")
		if r.code != 1 || !strings.Contains(r.stderr, "999999") || count(t, db, "SELECT COUNT(*) FROM txbox_outbox_dead") != 2 {
			t.Fatalf("drop with an unknown id: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = run(t, db, nil, "dead", "drop", "--outbox", "--id", itoa(ob[0].ID))
		if r.code != 0 || !strings.Contains(r.stdout, "dropped: 1 of 1") {
			t.Fatalf("drop: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if left := listDead(t, db, "--outbox"); len(left) != 1 || left[0].Key != "o2" {
			t.Fatalf("after drop: %+v", left)
		}

		// Inbox drop: the key stays recorded, so a redelivery is a duplicate.
		r = run(t, db, nil, "dead", "drop", "--inbox", "--consumer", "c2", "--all")
		if r.code != 0 || !strings.Contains(r.stdout, "dropped: 1 of 1") {
			t.Fatalf("inbox drop: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_inbox WHERE consumer = ? AND msg_key = ?", "c2", "p2"); n != 1 {
			t.Fatalf("dropped inbox key recorded %d times, want 1", n)
		}

		// Inbox requeue: the message is in the outbox with its topic, key, payload and headers, the dead
		// letter and the parked key are gone.
		r = run(t, db, nil, "dead", "requeue", "--inbox", "--key", "p1")
		if r.code != 0 || !strings.Contains(r.stdout, "requeued: 1 of 1") {
			t.Fatalf("inbox requeue: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox WHERE topic = ? AND msg_key = ?", "t1", "p1"); n != 1 {
			t.Fatalf("requeued inbox message in the outbox %d times, want 1", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_inbox WHERE consumer = ? AND msg_key = ?", "c1", "p1"); n != 0 {
			t.Fatalf("parked key still recorded after requeue")
		}
		if left := listDead(t, db, "--inbox"); len(left) != 0 {
			t.Fatalf("inbox dead letters after requeue and drop: %+v", left)
		}
	})
}
