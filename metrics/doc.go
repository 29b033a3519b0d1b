// Package metrics exposes txbox's relay and inbox as Prometheus metrics.
//
// Nothing is registered globally: every constructor takes the prometheus.Registerer to use (pass
// prometheus.NewRegistry() or prometheus.DefaultRegisterer). The library packages do not depend on Prometheus;
// they report through hooks (relay.Config.OnBatch, inbox.Config.OnProcess) that this package implements:
//
//	reg := prometheus.NewRegistry()
//	rm, err := metrics.NewRelay(reg)
//	r, err := relay.New(db, relay.Config{Dialect: d, Publisher: pub, OnBatch: rm.ObserveBatch})
//
//	im, err := metrics.NewInbox(reg)
//	ib, err := inbox.New(db, inbox.Config{Dialect: d, Consumer: "payments", OnProcess: im.ObserveProcess})
//
//	err = metrics.RegisterBacklog(reg, db, d, "") // gauges read from the txbox_* tables at scrape time
//	err = metrics.RegisterPartitions(reg, db, d, "") // the partitioned tables' catch-all and partitions ahead
//
// Metric names:
//
//	txbox_relay_published_total            rows the broker confirmed
//	txbox_relay_failed_total               failed publishes, scheduled for a retry
//	txbox_relay_dead_total                 rows moved to the dead-letter table
//	txbox_relay_batch_errors_total         batches that failed on the database
//	txbox_relay_batch_duration_seconds     histogram of batch wall time (claim, publish, commit)
//	txbox_relay_connection_errors_total    batches that failed because the database connection was lost
//	txbox_relay_unavailable_total          rows given back or held because their broker was unavailable
//	txbox_relay_lease_lost_total           rows no longer leased when their batch finished
//	txbox_relay_breaker_open{topic}        1 while the relay holds a topic's rows for a broker outage
//	txbox_relay_breaker_opened_total{topic} times a topic's breaker opened (ObserveBreaker as OnBreaker)
//	txbox_inbox_deliveries_total{consumer,result}  result: processed, duplicate, parked, conflict, failed
//	txbox_inbox_handler_duration_seconds{consumer} histogram of time inside handlers
//	txbox_outbox_pending, txbox_outbox_due, txbox_outbox_oldest_pending_seconds, txbox_outbox_dead,
//	txbox_inbox_keys, txbox_inbox_dead     backlog gauges (RegisterBacklog), labelled prefix="txbox" (the
//	                                       installation's table prefix)
//	txbox_metrics_dropped_series_total     backlog series left out of scrapes (below)
//	txbox_partition_catchall_rows{table}, txbox_partition_ahead_seconds{table}, txbox_partition_count{table}
//	                                       time-partitioned tables (RegisterPartitions): rows written while their
//	                                       partition was missing, how far ahead partitions exist
//
// Consumer labels come from the inbox table. A stored name that is not UTF-8 (MySQL keeps bytes) is labelled with
// its invalid bytes written \xNN; should that equal another consumer's name, its series are left out of the
// scrape and counted in txbox_metrics_dropped_series_total, so that a scrape never fails on stored data.
//
// A relay fleet (package relay/fleet) is exposed by NewFleet, every series labelled database (the fleet's name for
// it): the relay counters above per database (ObserveBatch as fleet.Config.OnBatch), the backlog gauges of the
// databases this relay holds, and
//
//	txbox_fleet_database_up{database}          0 while the database cannot be reached or used (txbox status says why)
//	txbox_fleet_database_held{database}        1 while this relay holds its drain lease and drains it
//	txbox_fleet_relays                         live relays this relay counts, itself included
//	txbox_fleet_scrape_errors_total{database}  scrapes that left a held database's backlog out (never failing)
//	txbox_fleet_unobserved_batches_total{database}  batches not counted (the database's counters could not register)
package metrics
