package rocketmq_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// TestTraceContextCrossesTheBroker: a span context in the producer's ctx at Enqueue arrives, through the outbox,
// the relay, RocketMQ properties and the inbox, as the remote parent in the consumer handler's ctx.
func TestTraceContextCrossesTheBroker(t *testing.T) {
	e := newBed(t, target(t, "postgres-pgx"), 2, inbox.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ob, err := outbox.New(outbox.Config{Dialect: e.db.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := e.db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	producerCtx := trace.ContextWithSpanContext(ctx, sc)
	if err := ob.Enqueue(producerCtx, tx, outbox.Message{Topic: e.topic, Key: "trace/1", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	got := make(chan trace.SpanContext, 1)
	e.consumer(nil, func(ctx context.Context, _ *sqlx.Tx, m *rocketmq.Message) error {
		select {
		case got <- trace.SpanContextFromContext(ctx):
		default:
		}
		return nil
	})
	r, err := relay.New(e.db.DB, relay.Config{Dialect: e.db.Dialect, Publisher: e.pub})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	select {
	case h := <-got:
		if h.TraceID() != sc.TraceID() || h.SpanID() != sc.SpanID() || !h.IsRemote() || !h.IsSampled() {
			t.Fatalf("handler's span context = trace %s span %s remote %v; want trace %s span %s, remote",
				h.TraceID(), h.SpanID(), h.IsRemote(), sc.TraceID(), sc.SpanID())
		}
	case <-ctx.Done():
		t.Fatal("message never reached the handler")
	}
}
