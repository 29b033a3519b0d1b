// Package orderservice is the example's order service. POST /orders writes an order and enqueues its
// order-created message in one transaction; a relay in the same process publishes the message to RocketMQ;
// payment-completed messages come back through the inbox and mark the order paid, once.
//
// It shares nothing with the payment service but the broker: its own database, its own tables, its own
// relay and consumer group.
package orderservice
