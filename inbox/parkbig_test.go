package inbox_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// maxAllowedPacket is the MySQL server's max_allowed_packet, or 0 on PostgreSQL.
func maxAllowedPacket(t *testing.T, db *testdb.DB) int {
	if db.Dialect.Name() != "mysql" {
		return 0
	}
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT @@max_allowed_packet").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Issue 11, item 2: a failing message is parked after MaxAttempts whatever its size, and its handler runs
// exactly MaxAttempts times. On MySQL, 70 KB of headers ('<' that JSON escaping used to grow six-fold) overflowed
// the BLOB column and a payload over max_allowed_packet failed the park INSERT, which rolled the attempt count
// back with it: the handler ran for ever. What the database cannot hold is cut, and the dead letter says so.
func TestParkingAlwaysSucceeds(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		const attempts = 3
		payloadLen := 17 << 20
		if p := maxAllowedPacket(t, db); p > 0 {
			payloadLen = p + 1<<20
		}
		ib := newInbox(t, db, "big", inbox.Config{MaxAttempts: attempts, MaxPayloadBytes: inbox.MaxPayloadLimit})
		payload := bytes.Repeat([]byte("payload\x00\n'\\"), payloadLen/11+1)[:payloadLen]
		headers := map[string]string{"html": strings.Repeat("<", 70000), "small": "kept"}
		d := inbox.Delivery{Key: "huge/1", Payload: payload, Headers: headers, Topic: "orders", MessageID: "M1"}
		var runs atomic.Int32
		fail := func(context.Context, *sqlx.Tx) error { runs.Add(1); return errors.New("handler refuses") }
		var res inbox.Result
		for range 2 * attempts {
			var err error
			res, err = ib.Process(ctx, d, fail)
			if res == inbox.Parked && err == nil {
				break
			}
			if res != inbox.Failed || err == nil || ctx.Err() != nil {
				t.Fatalf("Process = %v, %v", res, err)
			}
		}
		if res != inbox.Parked || runs.Load() != attempts {
			t.Fatalf("after the deliveries: %v, handler ran %d times; want Parked after exactly %d runs", res, runs.Load(), attempts)
		}
		if res, err := ib.Process(ctx, d, fail); res != inbox.Parked || err != nil || runs.Load() != attempts {
			t.Fatalf("a later delivery: %v, %v, handler ran %d times; want Parked without the handler", res, err, runs.Load())
		}
		dead, err := ib.ListDead(ctx, inbox.DeadFilter{Key: d.Key})
		if err != nil || len(dead) != 1 {
			t.Fatalf("ListDead = %d, %v; want the parked message", len(dead), err)
		}
		dl := dead[0]
		sum := sha256.Sum256(payload)
		if dl.Attempts != attempts || !strings.HasSuffix(dl.LastError, "handler refuses") || dl.Delivery.Topic != "orders" {
			t.Fatalf("dead letter: attempts %d, last error %q, topic %q", dl.Attempts, dl.LastError, dl.Delivery.Topic)
		}
		if !bytes.HasPrefix(payload, dl.Delivery.Payload) {
			t.Fatal("the stored payload is not the start of the delivered one")
		}
		cut := dl.Truncated
		switch {
		case len(dl.Delivery.Payload) == len(payload) && dl.Delivery.Headers["html"] == headers["html"]:
			if cut != nil {
				t.Fatalf("stored whole, yet marked truncated: %+v", cut)
			}
			if db.Dialect.Name() == "mysql" {
				t.Fatal("MySQL stored a payload over max_allowed_packet whole: the test's premise is off")
			}
		case cut == nil:
			t.Fatalf("stored %d of %d payload bytes without a truncation record", len(dl.Delivery.Payload), len(payload))
		case cut.PayloadBytes != len(payload) || !bytes.Equal(cut.PayloadSHA256, sum[:]):
			t.Fatalf("truncation record %+v: want the payload's %d bytes and SHA-256", cut, len(payload))
		case cut.HeadersBytes == 0 && dl.Delivery.Headers["html"] != headers["html"]:
			t.Fatal("headers changed without a record of their cut")
		}
		if cut != nil {
			t.Logf("kept %d of %d payload bytes; headers: %d bytes dropped", len(dl.Delivery.Payload), cut.PayloadBytes, cut.HeadersBytes)
			if _, err := ib.Replay(ctx, dl.ID, func(context.Context, *sqlx.Tx, inbox.Delivery) error { return nil }); !errors.Is(err, inbox.ErrTruncated) {
				t.Fatalf("Replay of a truncated dead letter = %v, want ErrTruncated", err)
			}
			if err := ib.DropDead(ctx, dl.ID); err != nil {
				t.Fatalf("DropDead of a truncated dead letter: %v", err)
			}
		}
	})
}

// When the database refuses the dead-letter row for a reason the inbox cannot foresee (here a trigger; in real
// life e.g. InnoDB's limit on BLOB data per transaction), the message is parked without payload and headers
// rather than not at all: the count and the park commit, and the handler does not run again.
func TestParkWhenTheDatabaseRefusesTheRow(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		refuse := []string{
			`CREATE TRIGGER refuse_payload BEFORE INSERT ON txbox_inbox_dead FOR EACH ROW BEGIN
				IF LENGTH(NEW.payload) > 0 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'row refused by the test'; END IF;
			END`,
		}
		if db.Dialect.Name() == "postgres" {
			refuse = []string{
				`CREATE FUNCTION refuse_payload() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
					IF length(NEW.payload) > 0 THEN RAISE EXCEPTION 'row refused by the test'; END IF; RETURN NEW;
				END $$`,
				`CREATE TRIGGER refuse_payload BEFORE INSERT ON txbox_inbox_dead FOR EACH ROW EXECUTE FUNCTION refuse_payload()`,
			}
		}
		for _, q := range refuse {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		ib := newInbox(t, db, "refused", inbox.Config{MaxAttempts: 2})
		d := inbox.Delivery{Key: "k/1", Payload: []byte("payload"), Headers: map[string]string{"h": "v"}}
		var runs atomic.Int32
		fail := func(context.Context, *sqlx.Tx) error { runs.Add(1); return errors.New("no") }
		if res, err := ib.Process(ctx, d, fail); res != inbox.Failed || err == nil {
			t.Fatalf("first delivery: %v, %v", res, err)
		}
		if res, err := ib.Process(ctx, d, fail); res != inbox.Parked || err != nil {
			t.Fatalf("second delivery: %v, %v; want Parked", res, err)
		}
		if res, err := ib.Process(ctx, d, fail); res != inbox.Parked || err != nil || runs.Load() != 2 {
			t.Fatalf("third delivery: %v, %v, handler ran %d times; want Parked after 2 runs", res, err, runs.Load())
		}
		dead, err := ib.ListDead(ctx, inbox.DeadFilter{})
		if err != nil || len(dead) != 1 {
			t.Fatalf("ListDead = %v, %v", dead, err)
		}
		sum := sha256.Sum256(d.Payload)
		dl := dead[0]
		if cut := dl.Truncated; cut == nil || len(dl.Delivery.Payload) != 0 || dl.Delivery.Headers != nil ||
			cut.PayloadBytes != len(d.Payload) || cut.HeadersBytes != len(`{"h":"v"}`) || !bytes.Equal(cut.PayloadSHA256, sum[:]) {
			t.Fatalf("dead letter %+v, truncation %+v: want sizes and hash only", dl, dl.Truncated)
		}
	})
}

// Park takes a delivery over MaxPayloadBytes, which Process refuses (ErrInvalidDelivery): its first
// MaxPayloadBytes are stored and the dead letter is marked truncated with the payload's size and hash.
func TestParkOversizedDelivery(t *testing.T) {
	testdb.RunLayouts(t, func(t *testing.T, db *testdb.DB) {
		ctx := context.Background()
		ib := newInbox(t, db, "oversized", inbox.Config{MaxPayloadBytes: 1000})
		d := inbox.Delivery{Key: "k/1", Payload: bytes.Repeat([]byte("x"), 5000), Topic: "orders"}
		_, err := ib.Process(ctx, d, func(context.Context, *sqlx.Tx) error { return nil })
		if !errors.Is(err, inbox.ErrInvalidDelivery) {
			t.Fatalf("Process = %v, want ErrInvalidDelivery", err)
		}
		if res, err := ib.Park(ctx, d, err); res != inbox.Parked || err != nil {
			t.Fatalf("Park = %v, %v; want Parked", res, err)
		}
		dead, err := ib.ListDead(ctx, inbox.DeadFilter{})
		if err != nil || len(dead) != 1 {
			t.Fatalf("ListDead = %v, %v", dead, err)
		}
		sum := sha256.Sum256(d.Payload)
		if dl := dead[0]; len(dl.Delivery.Payload) != 1000 || dl.Truncated == nil || dl.Truncated.PayloadBytes != 5000 ||
			!bytes.Equal(dl.Truncated.PayloadSHA256, sum[:]) || dl.Truncated.HeadersBytes != 0 {
			t.Fatalf("dead letter keeps %d bytes, truncation %+v; want 1000 of 5000 with the hash", len(dl.Delivery.Payload), dl.Truncated)
		}
		if _, err := ib.Park(ctx, inbox.Delivery{Key: "bad\x00key"}, errors.New("x")); !errors.Is(err, inbox.ErrInvalidDelivery) {
			t.Fatalf("Park of an invalid key = %v, want ErrInvalidDelivery", err)
		}
	})
}
