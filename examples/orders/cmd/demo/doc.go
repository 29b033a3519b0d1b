// Command demo runs the orders example end to end and prints a report: both services in this process over
// the real RocketMQ broker, N orders through the order service's HTTP API, failures injected (ACKs lost after
// commit, handlers slower than their deadline, producers re-sending), and the invariants checked from the
// databases. It exits 1 if an invariant fails, 2 if the demo could not run.
//
// `make demo` starts PostgreSQL, MariaDB and RocketMQ with scripts/services.sh and runs it from the
// repository's root. By hand:
//
//	eval "$(scripts/services.sh env)"
//	go run ./examples/orders/cmd/demo -db postgres -orders 1000
//
// It reads TXBOX_MYSQL_DSN or TXBOX_POSTGRES_DSN (the server: the demo creates its own databases or schemas
// on it), TXBOX_ROCKETMQ_NAMESRV, and TXBOX_DEMO_DB / TXBOX_DEMO_ORDERS as defaults for -db and -orders.
package main
