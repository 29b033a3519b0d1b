// Package paymentservice is the example's payment service. It consumes order-created through the inbox under
// the key "<order>/payment" (inbox/rocketmq's Config.InboxKey) — one payment per order, whichever message asks
// for it and however often — and in that same transaction records the payment (an upsert), charges it (an
// append-only ledger row, the effect that must never happen twice) and enqueues payment-completed. A relay in
// the process publishes it.
package paymentservice
