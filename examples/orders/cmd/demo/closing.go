package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jmoiron/sqlx"
	"go.yaml.in/yaml/v3"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/demo"
	"github.com/txbox/txbox/examples/orders/internal/store"
	"github.com/txbox/txbox/internal/rmqquery"
)

// lookCloser ends the demo: the trace of one order across both services' databases and the broker (one
// whose order-created the producer re-sent, when there is one: two copies on the broker, one payment), and
// how to open the console and txbox trace on the demo's databases, whose DSNs it writes to a databases file
// in the temporary directory (mode 0600; the demo's own local databases).
func lookCloser(ctx context.Context, w io.Writer, cfg demo.Config) error {
	open := func(dsn string) (*sqlx.DB, error) { return sqlx.Open(store.Driver(cfg.Dialect), dsn) }
	orders, err := open(cfg.OrderDSN)
	if err != nil {
		return err
	}
	defer orders.Close()
	payments, err := open(cfg.PaymentDSN)
	if err != nil {
		return err
	}
	defer payments.Close()

	var ids []string
	if err := orders.SelectContext(ctx, &ids, "SELECT id FROM orders ORDER BY id"); err != nil || len(ids) == 0 {
		return fmt.Errorf("pick an order: %v (%d orders)", err, len(ids))
	}
	order, why := ids[0], ""
	for _, id := range ids {
		if cfg.Faults.For(bus.OrderCreatedKey(id)) == bus.Resend {
			order, why = id, " Its order-created was sent twice by the producer: two copies on the broker, one payment."
			break
		}
	}
	c, err := console.New(console.Config{ReadOnly: true, Broker: &rmqquery.Client{NameServers: cfg.NameServers},
		Databases: []console.Database{{Name: "orders", DB: orders, Dialect: cfg.Dialect},
			{Name: "payments", DB: payments, Dialect: cfg.Dialect}}})
	if err != nil {
		return err
	}
	tr, err := c.Trace(ctx, order, false)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nWhere are order %s's messages?%s (txbox trace %s)\n\n", order, why, order)
	if err := console.WriteText(w, tr); err != nil {
		return err
	}

	file, err := writeDatabases(cfg)
	if err != nil {
		return err
	}
	ns := strings.Join(cfg.NameServers, ",")
	fmt.Fprintf(w, `
Look closer: the console on the demo's databases (listed in %[1]s)
  export TXBOX_CONSOLE_TOKEN=$(openssl rand -hex 16)   # needed to requeue, replay or drop dead letters
  go run ./cmd/txbox console --databases %[1]s --namesrv %[2]s
  then open http://127.0.0.1:7070/trace?key=%[3]s  (the JSON API: curl -s http://127.0.0.1:7070/api/v1/trace?key=%[3]s)
or trace any order in a terminal:
  go run ./cmd/txbox trace --databases %[1]s --namesrv %[2]s %[3]s
`, file, ns, order)
	return nil
}

// writeDatabases writes a txbox databases file naming the demo's two databases and returns its path.
func writeDatabases(cfg demo.Config) (string, error) {
	type entry struct {
		Name    string `yaml:"name"`
		Dialect string `yaml:"dialect"`
		DSN     string `yaml:"dsn"`
	}
	var f struct {
		Databases []entry `yaml:"databases"`
	}
	f.Databases = []entry{{"orders", cfg.Dialect.Name(), cfg.OrderDSN}, {"payments", cfg.Dialect.Name(), cfg.PaymentDSN}}
	body, err := yaml.Marshal(f)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), "txbox-demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "databases.yaml")
	head := "# The txbox orders demo's databases, local and throwaway, for txbox trace and txbox console.\n" +
		"# Elsewhere, keep passwords out of this file: dsn: ${ORDERS_DSN} reads the environment.\n"
	return path, os.WriteFile(path, append([]byte(head), body...), 0o600)
}
