// Package service is the skeleton the example's two services share: configuration, the database with txbox's
// migrations and the service's schema, an outbox and an inbox, the HTTP listener, and Run, which publishes the
// outbox through a relay to RocketMQ, consumes one topic with txbox's inbox/rocketmq consumer (the demo's faults
// and counters on its hooks, bus.ConsumerHooks) and serves HTTP until its context ends, then stops in
// dependency order. Package orderservice and package paymentservice add their handlers.
package service
