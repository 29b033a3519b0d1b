// Package migrations creates and upgrades txbox's tables (txbox_outbox, txbox_inbox and their dead-letter
// tables) with goose v3.
//
// The SQL files are embedded, one folder per dialect ([FS], or [Files] for one dialect), and run through a goose
// Provider that records versions in txbox's own table, [VersionTable], with goose's global registry disabled:
// an application's own goose setup and its goose_db_version table are never touched. Concurrent Up calls (several
// replicas starting at once) are serialised with a session lock on the database (MySQL GET_LOCK, PostgreSQL
// advisory lock).
//
// Applications that manage their schema with their own goose (or another tool) can copy the files from
// [Files] instead of calling [Up]. Never run the migrations inside a transaction of your own: MySQL commits DDL
// implicitly.
package migrations
