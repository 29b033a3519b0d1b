// Package store opens a service's database and creates its tables: txbox's (through migrations.Up) and the
// service's own, which the example creates itself with CREATE TABLE IF NOT EXISTS, as a small service might.
package store
