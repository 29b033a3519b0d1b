// Package partition keeps txbox's time-partitioned tables (the inbox keys and the published outbox rows): it
// makes partitions ahead of time, drops whole the ones whose rows are all older than the table's retention
// (carrying parked inbox keys into a live partition first), and reports rows that fell into the catch-all
// partition because a partition was missing. Package inbox (Purge, RunPurger), package relay (its purge of
// published rows) and `txbox partitions` run it; it needs no coordination: every step is idempotent, and two
// managers racing on one table make the same partitions (one of them fails and tries again next time).
//
// Only tests and the packages above import it.
package partition
