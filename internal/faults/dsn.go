package faults

import (
	"fmt"
	"net/url"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

// Reroute returns the server address dsn connects to and dsn changed to connect to addr instead: a MySQL DSN
// (user:password@tcp(host:port)/db?...) for dialect "mysql", a postgres:// URL otherwise. It is how a scenario
// puts a Proxy between a relay or an inbox and its database.
func Reroute(dialect, dsn, addr string) (target, rerouted string, err error) {
	if dialect == "mysql" {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return "", "", fmt.Errorf("faults: parse MySQL DSN: %w", err)
		}
		if cfg.Net != "tcp" {
			return "", "", fmt.Errorf("faults: MySQL DSN uses %q, want tcp", cfg.Net)
		}
		target, cfg.Addr = cfg.Addr, addr
		return target, cfg.FormatDSN(), nil
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "", "", fmt.Errorf("faults: want a postgres:// URL DSN (%v)", err)
	}
	target, u.Host = u.Host, addr
	return target, u.String(), nil
}

// Proxied starts a Proxy in front of the server dsn connects to and opens a pool (driver, dialect as for
// Reroute) that reaches it through the proxy. Close the pool, then the proxy.
func Proxied(dialect, driver, dsn string) (*Proxy, *sqlx.DB, error) {
	target, _, err := Reroute(dialect, dsn, "127.0.0.1:1")
	if err != nil {
		return nil, nil, err
	}
	p, err := NewProxy(target)
	if err != nil {
		return nil, nil, err
	}
	_, via, err := Reroute(dialect, dsn, p.Addr())
	if err == nil {
		var db *sqlx.DB
		if db, err = sqlx.Open(driver, via); err == nil {
			return p, db, nil
		}
	}
	_ = p.Close()
	return nil, nil, err
}
