package main

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
)

// refusingConnector fails every connection with an error that quotes the password, as a careless driver might.
type refusingConnector struct{ password string }

func (c refusingConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("login refused for password " + c.password)
}
func (c refusingConnector) Driver() driver.Driver { return nil }

// /readyz and the log records pass driver text on with the secrets the CLI knows scrubbed out.
func TestReadyzAndLogsScrubSecrets(t *testing.T) {
	const password = "Sup3r-secret"
	g := &globals{}
	g.scrub.add(password)
	db := sqlx.NewDb(sql.OpenDB(refusingConnector{password}), "mysql")
	defer db.Close()
	w := &wiredRelay{db: db, scrub: &g.scrub, log: slog.New(slog.DiscardHandler)}
	w.started.Store(true)
	srv, err := startServer("127.0.0.1:0", prometheus.NewRegistry(), w.ready, w.log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close(w.log)
	resp, err := http.Get("http://" + srv.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "login refused") ||
		strings.Contains(string(body), password) {
		t.Fatalf("/readyz: %d %q, want 503 with the driver's reason, scrubbed", resp.StatusCode, body)
	}

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: g.scrub.replaceAttr}))
	log.Warn("txbox relay: batch failed", "error", errors.New("dial: password "+password+" rejected"),
		"err", "password "+password, "component", "txbox.relay")
	if out := logs.String(); strings.Contains(out, password) || !strings.Contains(out, "component=txbox.relay") {
		t.Fatalf("log record: %s", out)
	}
}
