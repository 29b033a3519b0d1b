package demo_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/examples/orders/internal/demo"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
)

// TestOneTracePerOrder runs both services over the real broker with the OpenTelemetry SDK installed (an
// in-memory exporter) and checks that each order is one trace: the order service's Enqueue (create), its
// relay's publish (send) and the payment service's Process (process, parented by and linked to the
// create span), and on through payment-completed back to the order service.
func TestOneTracePerOrder(t *testing.T) {
	broker := rmqtest.Get(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp) // the services take the global provider, as an application's would
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})

	tg := testdb.Targets[0]
	orderDB, paymentDB := testdb.Open(t, tg), testdb.Open(t, tg)
	run := randomHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := demo.Config{
		Dialect: tg.Dialect, OrderDSN: orderDB.DSN, PaymentDSN: paymentDB.DSN, NameServers: broker.NameServers(),
		OrderCreatedTopic: "trace-" + run + "-order-created", PaymentCompletedTopic: "trace-" + run + "-payment-completed",
		GroupSuffix: "-" + run, Orders: 3, HandlerTimeout: 5 * time.Second, Deadline: 2 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(newTestWriter(t), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	create := func(_ context.Context, topic string, queues int) error {
		broker.CreateTopic(t, topic, queues)
		return nil
	}
	if err := demo.PrepareBroker(ctx, create, cfg); err != nil {
		t.Fatal(err)
	}
	rep, err := demo.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Check(); err != nil {
		t.Fatal(err)
	}

	spans := exp.GetSpans()
	byTrace := map[trace.TraceID][]tracetest.SpanStub{}
	for _, s := range spans {
		byTrace[s.SpanContext.TraceID()] = append(byTrace[s.SpanContext.TraceID()], s)
	}
	creates := 0
	for _, s := range spans {
		if s.Name != "create "+cfg.OrderCreatedTopic {
			continue
		}
		creates++
		tr := byTrace[s.SpanContext.TraceID()]
		if creates == 1 {
			var b strings.Builder
			for _, x := range tr {
				fmt.Fprintf(&b, "  %-45s %-8s span %s parent %s\n", x.Name, x.SpanKind, x.SpanContext.SpanID(), x.Parent.SpanID())
			}
			t.Logf("info: the trace of one order:\n%s", b.String())
		}
		checkOrderTrace(t, cfg, s, tr)
	}
	if creates != 3 {
		t.Fatalf("%d create spans for order-created, want one per order (3); %d spans in all", creates, len(spans))
	}
}

func attr(s tracetest.SpanStub, key attribute.Key) attribute.Value {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// checkOrderTrace checks the spans of one order's trace, whose root is create.
func checkOrderTrace(t *testing.T, cfg demo.Config, create tracetest.SpanStub, tr []tracetest.SpanStub) {
	t.Helper()
	find := func(name string) (tracetest.SpanStub, bool) {
		i := slices.IndexFunc(tr, func(s tracetest.SpanStub) bool { return s.Name == name })
		if i < 0 {
			t.Errorf("trace %s has no span %q", create.SpanContext.TraceID(), name)
			return tracetest.SpanStub{}, false
		}
		return tr[i], true
	}
	if create.SpanKind != trace.SpanKindProducer || attr(create, "messaging.system").AsString() != "rocketmq" ||
		attr(create, "messaging.operation.type").AsString() != "create" ||
		attr(create, "messaging.destination.name").AsString() != cfg.OrderCreatedTopic ||
		!strings.HasSuffix(attr(create, "messaging.rocketmq.message.keys").AsStringSlice()[0], "/created") {
		t.Errorf("create span: kind %s, attributes %v", create.SpanKind, create.Attributes)
	}
	send, ok1 := find("send " + cfg.OrderCreatedTopic)
	process, ok2 := find("process " + cfg.OrderCreatedTopic)
	if !ok1 || !ok2 {
		return
	}
	if send.SpanKind != trace.SpanKindClient || send.Parent.SpanID() != create.SpanContext.SpanID() ||
		attr(send, "messaging.operation.type").AsString() != "send" || attr(send, "txbox.outbox.id").AsInt64() == 0 {
		t.Errorf("send span: kind %s, parent %s (create %s), attributes %v", send.SpanKind, send.Parent.SpanID(),
			create.SpanContext.SpanID(), send.Attributes)
	}
	if process.SpanKind != trace.SpanKindConsumer || process.Parent.SpanID() != create.SpanContext.SpanID() ||
		len(process.Links) != 1 || process.Links[0].SpanContext.SpanID() != create.SpanContext.SpanID() ||
		attr(process, "messaging.consumer.group.name").AsString() != "payment-service"+cfg.GroupSuffix ||
		attr(process, "txbox.inbox.result").AsString() != "processed" ||
		attr(process, "messaging.destination.name").AsString() != cfg.OrderCreatedTopic {
		t.Errorf("process span: kind %s, parent %s, links %v, attributes %v", process.SpanKind, process.Parent.SpanID(),
			process.Links, process.Attributes)
	}
	// The payment service enqueues payment-completed inside Process: the trace goes on to the order service.
	pay, ok := find("create " + cfg.PaymentCompletedTopic)
	if ok && pay.Parent.SpanID() != process.SpanContext.SpanID() {
		t.Errorf("payment-completed's create span's parent is %s, want the process span %s", pay.Parent.SpanID(),
			process.SpanContext.SpanID())
	}
	if back, ok := find("process " + cfg.PaymentCompletedTopic); ok &&
		attr(back, "messaging.consumer.group.name").AsString() != "order-service"+cfg.GroupSuffix {
		t.Errorf("payment-completed processed by %v", back.Attributes)
	}
}
