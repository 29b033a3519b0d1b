// Command txbox-bench measures the outbox and the relay against the raw SQL they replace, on MariaDB and
// PostgreSQL in one run, and prints the figures with their ratios and targets:
//
//	(a) enqueue: a business transaction plus one outbox message vs the same transaction without it, for a
//	    one-statement transaction (INSERT) and a three-statement one (lock customer, insert order, update
//	    customer);
//	(b) drain: 100,000 prefilled rows to a counting publisher vs a bare loop of
//	    SELECT ... ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED + DELETE, with 1 and 4 workers;
//	(c) commit-to-publish latency, p50 and p99, at a steady 1,000 messages/s.
//
// Usage (services running, DSNs from scripts/services.sh env):
//
//	eval "$(scripts/services.sh env)" && go run ./cmd/txbox-bench [-rounds 3] [-rows 100000] [-only mysql|postgres]
//
// Each figure is the median of -rounds runs. Drivers: go-sql-driver/mysql with interpolateParams=true, pgx's
// database/sql driver ("pgx"); both are stated in the output. Each run uses a fresh database (MySQL) or schema
// (PostgreSQL) that it drops at the end.
package main
