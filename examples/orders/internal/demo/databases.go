package demo

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	"github.com/go-sql-driver/mysql"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/store"
)

// PrepareDatabases gives each service an empty database of its own on the server serverDSN points at: on
// MySQL/MariaDB the databases txbox_demo_orders and txbox_demo_payments, on PostgreSQL schemas of those names
// in serverDSN's database. An earlier run's are dropped first, so every report starts from zero; they stay
// after the run for you to look at. It returns each service's DSN.
func PrepareDatabases(ctx context.Context, d dialect.Dialect, serverDSN string) (orderDSN, paymentDSN string, err error) {
	admin, err := sql.Open(store.Driver(d), serverDSN)
	if err != nil {
		return "", "", fmt.Errorf("demo: open the database server: %w", err)
	}
	defer admin.Close()
	var dsns []string
	for _, name := range []string{"txbox_demo_orders", "txbox_demo_payments"} {
		var stmts []string
		var dsn string
		if d.Name() == "mysql" {
			stmts = []string{"DROP DATABASE IF EXISTS " + name, "CREATE DATABASE " + name}
			cfg, err := mysql.ParseDSN(serverDSN)
			if err != nil {
				return "", "", fmt.Errorf("demo: MySQL DSN: %w", err)
			}
			cfg.DBName = name
			dsn = cfg.FormatDSN()
		} else {
			stmts = []string{"DROP SCHEMA IF EXISTS " + name + " CASCADE", "CREATE SCHEMA " + name}
			u, err := url.Parse(serverDSN)
			if err != nil {
				return "", "", fmt.Errorf("demo: PostgreSQL DSN (want a postgres:// URL): %w", err)
			}
			q := u.Query()
			q.Set("search_path", name)
			u.RawQuery = q.Encode()
			dsn = u.String()
		}
		for _, s := range stmts {
			if _, err := admin.ExecContext(ctx, s); err != nil {
				return "", "", fmt.Errorf("demo: prepare %s: %w", name, err)
			}
		}
		dsns = append(dsns, dsn)
	}
	return dsns[0], dsns[1], nil
}
