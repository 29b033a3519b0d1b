// Package paymentservice is the example's payment service. It consumes order-created through the inbox under
// the key "<order>/payment" (inbox/rocketmq's Config.InboxKey) — one payment per order, whichever message asks
// for it and however often — and in that same transaction charges the order at a payment gateway (package
// gateway, over HTTP), records the payment (an upsert) and the charge (an append-only ledger row) and enqueues
// payment-completed. A relay in the process publishes it.
//
// The gateway call cannot join the transaction. An idempotency record per order (inbox.Effects on the
// service's own database) stands beside it: a handler run again after its transaction rolled back finds the
// charge completed and its saved id, and does not call the gateway again; a call whose answer was lost runs
// again with the same Idempotency-Key, which the gateway answers with the first charge.
package paymentservice
