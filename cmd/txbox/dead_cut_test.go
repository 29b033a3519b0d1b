package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// An inbox dead letter that was cut when parked is listed as such (kept and delivered sizes, the payload's
// SHA-256) and is not requeued: what is left of it is not the message. A parked message whose topic RocketMQ
// refuses is not requeued either, rather than becoming an outbox dead letter.
func TestDeadRequeueRefusesWhatCannotBeSent(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ib := newInbox(t, db, "c1", inbox.Config{MaxPayloadBytes: 10})
		payload := []byte(strings.Repeat("p", 50))
		if res, err := ib.Park(ctx, inbox.Delivery{Key: "cut/1", Payload: payload, Topic: "orders"}, errors.New("too big")); res != inbox.Parked || err != nil {
			t.Fatalf("park: %v, %v", res, err)
		}
		if res, err := ib.Park(ctx, inbox.Delivery{Key: "badtopic/1", Payload: []byte("x"), Topic: "bad topic!"}, errors.New("x")); res != inbox.Parked || err != nil {
			t.Fatalf("park: %v, %v", res, err)
		}
		r := run(t, db, nil, "dead", "list", "--inbox", "--json", "--key", "cut/1")
		var rows []struct {
			PayloadBytes int `json:"payload_bytes"`
			Truncated    *struct {
				PayloadBytes  int    `json:"payload_bytes"`
				PayloadSHA256 string `json:"payload_sha256"`
			} `json:"truncated"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
			t.Fatalf("dead list --json: %v\n%s%s", err, r.stdout, r.stderr)
		}
		sum := sha256.Sum256(payload)
		if tr := rows[0].Truncated; rows[0].PayloadBytes != 10 || tr == nil || tr.PayloadBytes != 50 || tr.PayloadSHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("listed %+v, truncated %+v", rows[0], rows[0].Truncated)
		}
		if r := run(t, db, nil, "dead", "list", "--inbox"); !strings.Contains(r.stdout, "10 of 50 (cut)") {
			t.Fatalf("dead list does not show the cut:\n%s", r.stdout)
		}
		r = run(t, db, nil, "dead", "requeue", "--inbox", "--all")
		if r.code != 1 || !strings.Contains(r.stderr, "cut when parked") || !strings.Contains(r.stderr, "topic") ||
			!strings.Contains(r.stdout, "requeued: 0 of 2") {
			t.Fatalf("dead requeue: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox") + count(t, db, "SELECT COUNT(*) FROM txbox_outbox_dead"); n != 0 {
			t.Fatalf("%d outbox rows after a refused requeue", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_inbox_dead"); n != 2 {
			t.Fatalf("%d inbox dead letters, want both kept", n)
		}
	})
}
