// Package migrations creates and upgrades txbox's tables with goose v3.
//
// The SQL files are embedded templates, one folder per dialect, rendered for the installation's prefix
// ([WithPrefix]; txbox_outbox, txbox_inbox and so on by default, see dialect.TablesFor) and run through a goose
// Provider that records versions in the installation's own table, <prefix>_migrations, with goose's global
// registry disabled: an application's own goose setup and its goose_db_version table are never touched.
// Concurrent Up calls (several replicas starting at once) are serialised with a session lock on the database
// (MySQL GET_LOCK, PostgreSQL advisory lock). A prefix with a schema ("billing.txbox") gets its schema (MySQL:
// database) created when it does not exist yet.
//
// Migration 00007 adds the partitioned layout's tables: <prefix>_partitions (each partitioned table's layout,
// period and retention) and <prefix>_inbox_keys (inbox keys partitioned by time, with, on MySQL, the stored
// procedure <prefix>_inbox_keys_claim). A new installation created with [WithPartitioned](true) records keys
// there and partitions <prefix>_outbox_published by publishing time; any other keeps the unpartitioned layout
// until `txbox partitions convert` moves it online. Partitions themselves are made and dropped at run time
// (inbox.Purge, the relay's purge, `txbox partitions maintain`), not by migrations.
//
// Applications that manage their schema with their own goose (or another tool) can copy the rendered files from
// [Files] instead of calling [Up]. Never run the migrations inside a transaction of your own: MySQL commits DDL
// implicitly.
package migrations
