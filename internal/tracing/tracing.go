package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope of txbox's spans.
const Scope = "github.com/txbox/txbox"

// maxKeys bounds the keys an Enqueue span lists.
const maxKeys = 16

// Attribute keys of txbox's own.
const (
	OutboxIDKey    = attribute.Key("txbox.outbox.id")
	AttemptKey     = attribute.Key("txbox.attempt")
	InboxResultKey = attribute.Key("txbox.inbox.result")
)

// End ends a span started here, recording err (if any) as its error status. Call it deferred, through a
// closure that reads the function's named error result.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Span kinds as start options, made once: a span that no SDK records should cost next to nothing.
var (
	producer = trace.WithSpanKind(trace.SpanKindProducer)
	client   = trace.WithSpanKind(trace.SpanKindClient)
	consumer = trace.WithSpanKind(trace.SpanKindConsumer)
)

// Enqueue starts the producer span of an Enqueue of n (at least 1) messages; message(i) returns the topic and
// key of the i-th. The returned context is the one to inject into the messages' headers.
func Enqueue(ctx context.Context, tp trace.TracerProvider, n int, message func(i int) (topic, key string)) (context.Context, trace.Span) {
	ctx, span := tp.Tracer(Scope).Start(ctx, "create", producer)
	if !span.IsRecording() {
		return ctx, span
	}
	topic, _ := message(0)
	keys := make([]string, 0, min(n, maxKeys))
	for i := 0; i < n; i++ {
		t, k := message(i)
		if t != topic {
			topic = "" // several topics: no destination
		}
		if i < maxKeys {
			keys = append(keys, k)
		}
	}
	span.SetAttributes(semconv.MessagingSystemRocketMQ, semconv.MessagingOperationTypeCreate,
		semconv.MessagingOperationName("enqueue"), semconv.MessagingRocketMQMessageKeys(keys...))
	if topic != "" {
		span.SetName("create " + topic)
		span.SetAttributes(semconv.MessagingDestinationName(topic))
	}
	if n > 1 {
		span.SetAttributes(semconv.MessagingBatchMessageCount(n))
	}
	return ctx, span
}

// Send starts the span of one publish by the relay: a child of the producer's context, taken from the
// record's headers (W3C traceparent, as outbox.Enqueue writes it by default).
func Send(ctx context.Context, tp trace.TracerProvider, headers map[string]string, topic, key string, outboxID int64, attempt int) (context.Context, trace.Span) {
	if len(headers) > 0 {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(headers))
	}
	ctx, span := tp.Tracer(Scope).Start(ctx, "send", client)
	if span.IsRecording() {
		span.SetName("send " + topic)
		span.SetAttributes(semconv.MessagingSystemRocketMQ, semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"), semconv.MessagingDestinationName(topic),
			semconv.MessagingRocketMQMessageKeys(key), OutboxIDKey.Int64(outboxID), AttemptKey.Int(attempt))
	}
	return ctx, span
}

// Process starts the consumer span of inbox.Process. ctx already holds the context the message carried (the
// producer's, extracted from its headers): the span is its child and links to it. End it with
// EndProcess.
func Process(ctx context.Context, tp trace.TracerProvider, consumerName, topic, key, messageID string) (context.Context, trace.Span) {
	tr := tp.Tracer(Scope)
	var span trace.Span
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && sc.IsRemote() {
		ctx, span = tr.Start(ctx, "process", consumer, trace.WithLinks(trace.Link{SpanContext: sc}))
	} else {
		ctx, span = tr.Start(ctx, "process", consumer)
	}
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingSystemRocketMQ, semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"), semconv.MessagingConsumerGroupName(consumerName),
			semconv.MessagingRocketMQMessageKeys(key))
		if topic != "" {
			span.SetName("process " + topic)
			span.SetAttributes(semconv.MessagingDestinationName(topic))
		}
		if messageID != "" {
			span.SetAttributes(semconv.MessagingMessageID(messageID))
		}
	}
	return ctx, span
}

// EndProcess ends a Process span with the inbox's result (Result.String(): processed, duplicate, parked,
// failed) and error.
func EndProcess(span trace.Span, result string, err error) {
	if span.IsRecording() {
		span.SetAttributes(InboxResultKey.String(result))
	}
	End(span, err)
}
