// Package service is the skeleton the example's two services share: configuration, the database with txbox's
// migrations and the service's schema, an outbox and an inbox, the HTTP listener, and Run, which publishes the
// outbox through a relay to RocketMQ, consumes one topic through the inbox and serves HTTP until its context
// ends, then stops in dependency order. Package orderservice and package paymentservice add their handlers.
package service
