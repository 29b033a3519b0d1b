package outbox_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// Config.Check is the transport's say: a message it refuses fails Enqueue with ErrInvalidMessage wrapping its
// reason, before anything is written, even with valid messages in the same call. Check sees the headers as they
// would be stored, trace headers included.
func TestEnqueueRefusesWhatTheTransportCannotSend(t *testing.T) {
	errNoBang := errors.New("topic contains '!'")
	var mu sync.Mutex
	var seen []outbox.Message
	check := func(m outbox.Message) error {
		mu.Lock()
		seen = append(seen, m)
		mu.Unlock()
		if strings.Contains(m.Topic, "!") {
			return errNoBang
		}
		return nil
	}
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect, Check: check})
		if err != nil {
			t.Fatal(err)
		}
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled}))
		good := outbox.Message{Topic: "orders", Key: "1/created", Headers: map[string]string{"h": "v"}}
		err = ob.Enqueue(ctx, db, good, outbox.Message{Topic: "bad topic!", Key: "2/created"})
		if !errors.Is(err, outbox.ErrInvalidMessage) || !errors.Is(err, errNoBang) || !strings.Contains(err.Error(), "message 1") {
			t.Fatalf("Enqueue = %v, want ErrInvalidMessage wrapping the check's error for message 1", err)
		}
		if n := count(t, db); n != 0 {
			t.Fatalf("%d rows written by a refused call", n)
		}
		if err := ob.Enqueue(ctx, db, good); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		last := seen[len(seen)-1]
		mu.Unlock()
		if last.Headers["h"] != "v" || last.Headers["traceparent"] == "" {
			t.Fatalf("Check saw headers %v, want the message's and the trace headers", last.Headers)
		}
		if good.Headers["traceparent"] != "" {
			t.Fatal("Enqueue changed the caller's headers")
		}
	})
}

// DeliverAt beyond what the database's column holds is refused as an invalid message, naming DeliverAt, instead
// of failing in the database with an error of its own; the extremes the column does hold are accepted.
func TestDeliverAtOutsideTheDatabaseRange(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		inside := []time.Time{time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}
		outside := []time.Time{time.Date(999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
			time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}
		if db.Dialect.Name() == "postgres" {
			inside = []time.Time{time.Date(-4713, 11, 24, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
				time.Date(294276, 12, 31, 23, 59, 59, 999999000, time.UTC)}
			outside = []time.Time{time.Date(-4713, 11, 23, 23, 59, 59, 0, time.UTC),
				time.Date(294277, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(1e9, 1, 1, 0, 0, 0, 0, time.UTC)}
		}
		for _, at := range outside {
			err := ob.Enqueue(ctx, db, outbox.Message{Topic: "t", Key: "k", DeliverAt: at})
			if !errors.Is(err, outbox.ErrInvalidMessage) || !strings.Contains(err.Error(), "DeliverAt") {
				t.Errorf("DeliverAt %s: Enqueue = %v, want ErrInvalidMessage naming DeliverAt", at, err)
			}
		}
		if n := count(t, db); n != 0 {
			t.Fatalf("%d rows written for refused DeliverAt values", n)
		}
		for i, at := range inside {
			if err := ob.Enqueue(ctx, db, outbox.Message{Topic: "t", Key: "k" + string(rune('0'+i)), DeliverAt: at}); err != nil {
				t.Errorf("DeliverAt %s: %v", at, err)
			}
		}
		if n := count(t, db); n != len(inside) {
			t.Fatalf("%d rows, want %d", n, len(inside))
		}
	})
}

// Headers are stored without HTML escaping: '<', '>' and '&' count one byte each against MaxHeaderBytes, not six.
func TestHeadersMeasuredAsWritten(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect, MaxHeaderBytes: 20000})
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{"html": strings.Repeat("<a&b>", 3000)} // 15000 bytes; 75000 HTML-escaped
		if err := ob.Enqueue(context.Background(), db, outbox.Message{Topic: "t", Key: "k", Headers: h}); err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := db.QueryRowContext(context.Background(), "SELECT headers FROM txbox_outbox").Scan(&stored); err != nil {
			t.Fatal(err)
		}
		got, err := outbox.DecodeHeaders([]byte(stored))
		if err != nil || got["html"] != h["html"] {
			t.Fatalf("stored headers do not decode to what was enqueued (%v)", err)
		}
	})
}
