// Package rocketmq feeds Apache RocketMQ messages through an inbox (package inbox), so that each message's
// business effect is committed once however often the broker delivers it. It runs a rocketmq-client-go/v2 push
// consumer (Remoting protocol: point it at the name server).
//
//	ib, _ := inbox.New(db, inbox.Config{Dialect: dialect.MySQL, Consumer: "payment-service"})
//	c, err := rocketmq.New(ib, rocketmq.Config{
//		NameServers: []string{"127.0.0.1:9876"}, Group: "payment-service", Topic: "orders",
//	}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
//		_, err := tx.ExecContext(ctx, "UPDATE orders SET paid = 1 WHERE id = ?", string(m.Payload))
//		return err
//	})
//	...
//	defer c.Shutdown(ctx)
//
// # Business key
//
// The key is read from the user property TXBOX_KEY, which relay/rocketmq writes with the outbox row's Key byte for
// byte (KEYS holds an encoded form for the broker's index; package rmqwire is the whole format). The rule for a
// message without it:
//
//   - By default the key is the first space-separated entry of the message's KEYS, taken as it is (not decoded:
//     only txbox encodes KEYS, and txbox also writes TXBOX_KEY). That is what producers that are not txbox set
//     with the client's WithKeys (or setKeys in Java), so their messages are deduplicated on their first key.
//   - Config.RequireKeyProperty: true requires the property: a message without it is unusable (parked, see
//     below). Require it when several producers share the topic and only txbox's keys are business keys.
//   - Config.KeyProperty names another property to read the key from (with the same KEYS fallback unless
//     RequireKeyProperty), for producers that put their key in a property of their own.
//
// A message with neither is unusable. Headers are the message's user properties without RocketMQ's and txbox's
// own (empty-valued headers written by relay/rocketmq come back as empty values).
//
// # Outcomes
//
// Each message is one Inbox.Process call in which the Handler runs; its result (or Config.Interceptor's, see
// Hooks) maps to the client explicitly (rocketmq-client-go's ConsumeSuccess is the zero value, so
// "return 0, err" would acknowledge a failure):
//
//	Processed, Duplicate, Parked           → ConsumeSuccess (acknowledged)
//	error (handler, timeout, database)     → ConsumeRetryLater, or in orderly mode SuspendCurrentQueueAMoment
//	                                         with the queue suspended for SuspendTime
//	unusable message (see below)           → parked in the inbox's dead-letter table, then ConsumeSuccess
//
// With Config.BatchSize above 1, the messages of one callback go through Inbox.ProcessBatch together: one
// transaction and one commit, each handler under a savepoint. rocketmq-client-go acknowledges a callback as a
// whole (it ignores a partial acknowledgement), so when one message of a callback fails, all of them are sent
// back; those that committed come back as Duplicates and their handlers do not run again. OnOutcome reports a
// message Acked only when its whole callback was.
//
// Handler failures are counted by the inbox; after its MaxAttempts the message is parked (payload, headers,
// last error) and acknowledged, so a poison message neither loops nor blocks an orderly queue for ever. New
// requires the broker's MaxReconsumeTimes to be at least MaxAttempts, so that the inbox parks before the broker
// moves the message to %DLQ%<group>, and ConsumeTimeout to exceed the inbox's HandlerTimeout by HandlerMargin,
// so that a handler has given up (and rolled back) before the client's expiry sweep redelivers its message.
//
// # Unusable messages
//
// A message without a business key, with a key, headers or a payload size the inbox rejects
// (ErrInvalidDelivery), or whose key was processed before with a different payload (ErrFingerprintMismatch)
// cannot be processed and redelivery will not change that. It is parked in the inbox's dead-letter table with
// Inbox.Park, under the stand-in key inbox.Key("txbox-unusable", topic, message id), with an error matching
// ErrUnusable as its last error, and acknowledged: ListDead shows it, Replay or DropDead settle it. A payload
// over the inbox's MaxPayloadBytes (the broker limits the compressed body, so it can deliver more) is parked
// cut to MaxPayloadBytes and marked truncated (inbox.DeadLetter.Truncated); headers that are not valid UTF-8
// are left out. Only a message Park refuses even then goes to the broker's own %DLQ%<group>.
//
// # Hooks
//
// Three optional Config fields adapt the consumer without replacing it:
//
//   - InboxKey maps a message to the key the inbox records, for a service that deduplicates on what a message
//     is about (one payment per order) rather than on the message; Message.MessageKey keeps the key it carried.
//   - Interceptor wraps each keyed message's handling around a next that runs Process with the Handler. Its
//     result decides the acknowledgement as Process's would, so it can measure, add context to ctx, replace the
//     inbox (not calling next), or inject faults: calling next and then returning an error is a lost ACK, and
//     the redelivery finds the key recorded (Duplicate).
//   - OnOutcome is told what became of every handled message (Outcome: result, error, acknowledged or not,
//     unusable, duration), for counters and tests. Unusable messages are reported with Unusable set; messages
//     without a key never reach InboxKey or Interceptor.
//
// # Effects outside the database
//
// NewEffects runs messages through inbox.Effects instead of Inbox.Process, for a consumer whose effect is a call
// to another system (a payment gateway, an email service): the EffectHandler gets the message and the claim,
// passes the claim's key downstream as the idempotency key and returns a small result to save. Outcomes map as
// above, with one more: a message whose key another run holds (inbox.ErrBusy) goes back with ConsumeRetryLater
// and the delay level that covers the rest of that run's lease (orderly: the queue is suspended for it), and is
// not counted as a failure. Duplicates (the effect completed before) are acknowledged without calling the
// handler; unusable messages are parked in the effect records. See package inbox, "Effects outside the
// database", for what the records guarantee and what the downstream system must do.
//
// # Orderly consumption
//
// With Config.Orderly each queue is consumed by one handler at a time, in queue order; with relay/rocketmq's
// ShardingKey mapping that is per-sharding-key order. A failed message suspends its queue for SuspendTime and is
// retried in place (the orderly client would otherwise retry it in a tight loop), until it succeeds or the inbox
// parks it. Database outages are not counted against a message, so an orderly queue waits them out.
//
// # Shutdown
//
// Shutdown stops handling new deliveries (they are held, neither handled nor acknowledged), suspends pulling,
// waits for the handlers in flight, and then shuts the client down, which persists the group's offsets. Messages
// not acknowledged by then are delivered to the group's next consumer: nothing is lost, and what was delivered
// twice is a Duplicate for the inbox. If Shutdown's ctx ends first, in-flight handlers are cancelled (their
// transactions roll back) and Shutdown returns ErrShutdown; their messages, like any that fail while Shutdown
// runs, are held unacknowledged instead of being sent back to a broker the client is leaving. The client logs
// "processQueue is dropped without process consume result" (Warn) for each message held this way. A consumer cannot be restarted; create a new one.
//
// # Clients in one process
//
// rocketmq-client-go shares one connection client between every client of a process with the same IP and
// instance name, so InstanceName is unique per Consumer unless set. Two consumers of one group in one process
// are a trap even so (they rebalance the queues between them): shut one down completely before starting the
// next. The client's logging is process-global; New routes it to Config.Logger at Config.ClientLogLevel (Warn
// by default) for the whole process, the last New winning (internal/rmqlog).
package rocketmq
