package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// /readyz follows the readiness function: 503 with the reason while it reports one, 200 once it does not;
// /healthz answers 200 throughout; after close nothing listens.
func TestReadyzFollowsReadiness(t *testing.T) {
	var notReady atomic.Pointer[error]
	down := errors.New("database: connection refused")
	notReady.Store(&down)
	srv, err := startServer("127.0.0.1:0", prometheus.NewRegistry(), func(context.Context) error {
		if e := notReady.Load(); e != nil {
			return *e
		}
		return nil
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + srv.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Fatalf("/readyz while not ready: %d %q, want 503 with the reason", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz while not ready: %d, want 200", code)
	}
	notReady.Store(nil)
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz when ready: %d %q, want 200", code, body)
	}
	srv.close(slog.New(slog.DiscardHandler))
	if _, err := http.Get("http://" + srv.addr + "/healthz"); err == nil {
		t.Fatal("the server still answers after close")
	}
}
