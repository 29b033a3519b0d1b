package tracing_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/txbox/txbox/internal/tracing"
)

func recorder() (*tracetest.InMemoryExporter, trace.TracerProvider) {
	exp := tracetest.NewInMemoryExporter()
	return exp, sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// The chain create → send → process is one trace when the context travels in headers, and each span says
// what it is in the messaging conventions' terms.
func TestChain(t *testing.T) {
	exp, tp := recorder()
	msgs := [][2]string{{"orders", "1/created"}, {"orders", "2/created"}}
	ctx, span := tracing.Enqueue(context.Background(), tp, 2, func(i int) (string, string) { return msgs[i][0], msgs[i][1] })
	headers := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, headers)
	tracing.End(span, nil)

	_, send := tracing.Send(context.Background(), tp, headers, "orders", "1/created", 7, 2)
	tracing.End(send, errors.New("broker says no"))

	pctx := propagation.TraceContext{}.Extract(context.Background(), headers)
	_, proc := tracing.Process(pctx, tp, "payments", "orders", "1/payment", "msg-1")
	tracing.EndProcess(proc, "processed", nil)

	spans := exp.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans", len(spans))
	}
	c, s, p := spans[0], spans[1], spans[2]
	if c.Name != "create orders" || c.SpanKind != trace.SpanKindProducer || attrs(c)["messaging.batch.message_count"].AsInt64() != 2 ||
		len(attrs(c)["messaging.rocketmq.message.keys"].AsStringSlice()) != 2 || attrs(c)["messaging.destination.name"].AsString() != "orders" {
		t.Errorf("create span %s %s %v", c.Name, c.SpanKind, c.Attributes)
	}
	if s.Name != "send orders" || s.SpanKind != trace.SpanKindClient || s.Parent.SpanID() != c.SpanContext.SpanID() ||
		s.Status.Code != codes.Error || attrs(s)["txbox.outbox.id"].AsInt64() != 7 || attrs(s)["txbox.attempt"].AsInt64() != 2 {
		t.Errorf("send span %s %s parent %s status %v %v", s.Name, s.SpanKind, s.Parent.SpanID(), s.Status, s.Attributes)
	}
	if p.Name != "process orders" || p.SpanKind != trace.SpanKindConsumer || p.Parent.SpanID() != c.SpanContext.SpanID() ||
		len(p.Links) != 1 || p.Links[0].SpanContext.SpanID() != c.SpanContext.SpanID() ||
		attrs(p)["messaging.consumer.group.name"].AsString() != "payments" || attrs(p)["txbox.inbox.result"].AsString() != "processed" ||
		attrs(p)["messaging.message.id"].AsString() != "msg-1" || p.Status.Code == codes.Error {
		t.Errorf("process span %s %s parent %s links %v %v", p.Name, p.SpanKind, p.Parent.SpanID(), p.Links, p.Attributes)
	}
	for _, x := range spans {
		if x.SpanContext.TraceID() != c.SpanContext.TraceID() {
			t.Errorf("span %s in trace %s, want %s", x.Name, x.SpanContext.TraceID(), c.SpanContext.TraceID())
		}
	}
}

// Messages of several topics name no destination; a delivery without trace context starts a root span with
// no link; a failure is the span's error status.
func TestEdges(t *testing.T) {
	exp, tp := recorder()
	msgs := [][2]string{{"a", "k1"}, {"b", "k2"}}
	_, span := tracing.Enqueue(context.Background(), tp, 2, func(i int) (string, string) { return msgs[i][0], msgs[i][1] })
	tracing.End(span, nil)
	_, proc := tracing.Process(context.Background(), tp, "c", "", "k", "")
	tracing.EndProcess(proc, "failed", errors.New("handler says no"))
	spans := exp.GetSpans()
	if c := spans[0]; c.Name != "create" || attrs(c)["messaging.destination.name"].Type() != attribute.EMPTY {
		t.Errorf("create span of two topics: %s %v", c.Name, c.Attributes)
	}
	if p := spans[1]; p.Name != "process" || p.Parent.IsValid() || len(p.Links) != 0 || p.Status.Code != codes.Error ||
		attrs(p)["txbox.inbox.result"].AsString() != "failed" {
		t.Errorf("process span without context: %s parent %v links %v status %v", p.Name, p.Parent, p.Links, p.Status)
	}
}

// Without an SDK nothing is recorded and the caller's span context passes through unchanged.
func TestNoSDK(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	got, span := tracing.Enqueue(ctx, noop.NewTracerProvider(), 1, func(int) (string, string) { return "t", "k" })
	tracing.End(span, errors.New("x"))
	if !trace.SpanContextFromContext(got).Equal(sc) || span.IsRecording() {
		t.Errorf("no-op provider changed the span context or recorded")
	}
}
