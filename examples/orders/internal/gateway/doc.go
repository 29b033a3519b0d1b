// Package gateway is the example's stand-in payment gateway: an HTTP server that charges orders and honours an
// Idempotency-Key header as real gateways do — a request with a key it has seen returns the first charge
// instead of charging again (and a different request under the same key is refused) — and the client the
// payment service calls it with. It counts calls, charges and replays, and charges per order, for the demo's
// report.
package gateway
