// Package orders is txbox's end-to-end example: an order service and a payment service that share nothing
// but a RocketMQ broker, each with its own database, exchanging order-created and payment-completed through
// txbox's outbox (with a relay in each service) and inbox.
//
//	internal/orderservice    POST /orders: order + order-created in one transaction; payment-completed → paid
//	internal/paymentservice  order-created → one payment (upsert + ledger) + payment-completed, one transaction
//	internal/service         what both services share: config, database, outbox, inbox, relay, inbox/rocketmq's
//	                         consumer, HTTP
//	internal/bus             payloads, keys and topics; the demo's faults and counters, on the relay's
//	                         publisher and on the consumer's hooks
//	internal/demo            runs both in-process with faults injected and checks the invariants
//	cmd/order-service, cmd/payment-service, cmd/demo
//
// Run it with `make demo` (DB=mariadb|postgres, ORDERS=N) or, with Docker, `docker compose --profile mysql
// up --build` from the repository's root. This package holds the example's documentation and the tests that
// keep docker-compose.yml and the README's snippets honest.
package orders
