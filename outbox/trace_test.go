package outbox_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

func TestEnqueueCarriesTraceContext(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
			SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
			TraceFlags: trace.FlagsSampled,
		})
		ctx := trace.ContextWithSpanContext(context.Background(), sc)
		want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
		if err != nil {
			t.Fatal(err)
		}
		own := map[string]string{"source": "test"}
		explicit := map[string]string{"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}
		tx, err := db.BeginTxx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs := []outbox.Message{
			{Topic: "t", Key: "traced", Headers: own},
			{Topic: "t", Key: "explicit", Headers: explicit},
		}
		if err := ob.Enqueue(ctx, tx, msgs...); err != nil {
			t.Fatal(err)
		}
		// Without a span in ctx nothing is added.
		if err := ob.Enqueue(context.Background(), tx, outbox.Message{Topic: "t", Key: "untraced"}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if len(own) != 1 {
			t.Errorf("Enqueue modified the caller's headers: %v", own)
		}
		pub := memory.New()
		r, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Publisher: pub})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		got := map[string]map[string]string{}
		for _, rec := range pub.Records() {
			got[rec.Key] = rec.Headers
		}
		if got["traced"]["traceparent"] != want || got["traced"]["source"] != "test" {
			t.Errorf("traced headers = %v, want traceparent %s and source", got["traced"], want)
		}
		if got["explicit"]["traceparent"] != explicit["traceparent"] {
			t.Errorf("a message's own traceparent was replaced: %v", got["explicit"])
		}
		if _, ok := got["untraced"]["traceparent"]; ok {
			t.Errorf("traceparent added without a span: %v", got["untraced"])
		}
	})
}
