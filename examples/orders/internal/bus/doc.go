// Package bus is the example's glue between txbox and RocketMQ: the failure injection (Faults) and counters
// (Stats) that the demo reports, put on the relay's Publisher (Instrument) and on inbox/rocketmq's consumer
// through its hooks (ConsumerHooks), plus the messages' payloads, keys, topics and groups. The consumer is
// inbox/rocketmq's own; this package only adds what a demo needs. Both services use it; they share this code,
// never state.
package bus
