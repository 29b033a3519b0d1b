package orderservice

import "github.com/txbox/txbox/examples/orders/internal/store"

// schema is the service's own table. payment_events counts committed payment-completed handlers: it is not
// idempotent on purpose, so that it shows what the inbox prevents (the status update alone would hide a
// duplicate). Times are microseconds since the epoch, taken by this process, so latencies need no clock sync
// and no time zone handling.
var schema = store.Schema{
	MySQL: []string{`CREATE TABLE IF NOT EXISTS orders (
		id             VARBINARY(64) NOT NULL PRIMARY KEY,
		amount_cents   BIGINT        NOT NULL,
		status         VARCHAR(16)   NOT NULL,
		created_us     BIGINT        NOT NULL,
		paid_us        BIGINT        NULL,
		payment_id     VARBINARY(80) NULL,
		payment_events INT           NOT NULL DEFAULT 0
	) ENGINE = InnoDB`},
	Postgres: []string{`CREATE TABLE IF NOT EXISTS orders (
		id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
		amount_cents   BIGINT NOT NULL,
		status         TEXT   NOT NULL,
		created_us     BIGINT NOT NULL,
		paid_us        BIGINT NULL,
		payment_id     TEXT   NULL,
		payment_events INT    NOT NULL DEFAULT 0
	)`},
}
