// Command txbox-bench-retention measures what retention costs as the inbox grows, partitioned against
// unpartitioned, on MariaDB and PostgreSQL in one run (make bench-retention):
//
//   - Process throughput and p99 (4 workers, an upsert handler, one delivery in ten a redelivery) on an empty
//     inbox, then after bulk-loading half and all of -keys keys spread over 7 simulated days (the target: within
//     10% of the empty-table figure);
//   - the time to purge the oldest day (about -keys/7 keys; target < 1 s for the partitioned layout, against
//     batched DELETEs for the unpartitioned one), and Process's p99 while the purge runs (target ≤ 1.5× the quiet
//     p99 at full size);
//   - the table and index sizes after the purge (a dropped partition returns its space; DELETE does not).
//
// Usage (services running, DSNs from scripts/services.sh env; about 2 GB of disk per million keys per layout
// and database is not needed: ~150 bytes a key with its index):
//
//	eval "$(scripts/services.sh env)" && go run ./cmd/txbox-bench-retention [-keys 20000000] [-rounds 3] [-only mysql|postgres]
//
// Keys are loaded with INSERT ... SELECT from a number series (PostgreSQL generate_series, MariaDB's sequence
// engine), MD5 hex keys sorted within each chunk, not through Process. Throughput and p99 are medians of -rounds
// runs, with their min–max. Drivers: go-sql-driver/mysql with interpolateParams=true, pgx's database/sql
// driver. Each layout runs on a fresh database (MySQL) or schema (PostgreSQL), dropped at the end.
package main
