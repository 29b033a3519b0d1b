// Package tracing starts txbox's OpenTelemetry spans, after the messaging semantic conventions, so that one
// trace follows a message from the producer's transaction to the consumer's:
//
//	create <topic>   PRODUCER  outbox.Enqueue: its context is what each message's traceparent header carries
//	send <topic>     CLIENT    the relay's Publisher.Publish of one record: a child of that context
//	process <topic>  CONSUMER  inbox.Process: a child of the context the message carried, and linked to it
//
// Attributes: messaging.system (rocketmq), messaging.operation.type and .name, messaging.destination.name
// (the topic), messaging.rocketmq.message.keys (the business keys), messaging.consumer.group.name (the inbox
// consumer), messaging.message.id (the broker's), and txbox.outbox.id, txbox.attempt and txbox.inbox.result
// (processed, duplicate, parked or failed). Failures set the span's status to Error.
//
// Only the OpenTelemetry API is used: without an SDK the spans are no-ops, and attributes are built only for
// recording spans. The packages take a trace.TracerProvider in their Config (default otel.GetTracerProvider()).
package tracing
