package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// server serves /metrics, /healthz and /readyz next to a long-running command.
type server struct {
	http *http.Server
	addr string // where it listens, port resolved
	done chan struct{}
}

// readyTimeout bounds one readiness probe: a database that takes longer to answer is not ready.
const readyTimeout = 2 * time.Second

// startServer listens on addr at once (so a taken port fails the command before it starts working) and serves
// in the background. ready reports why the process cannot work yet, or nil.
func startServer(addr string, reg *prometheus.Registry, ready func(context.Context) error, log *slog.Logger) (*server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	s := &server{
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("txbox: metrics server failed", "error", err)
		}
	}()
	log.Info("txbox: serving /metrics, /healthz and /readyz", "addr", s.addr)
	return s, nil
}

// close stops the server, letting a scrape in progress finish for a moment.
func (s *server) close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		log.Warn("txbox: metrics server shutdown", "error", err)
	}
	<-s.done
}
