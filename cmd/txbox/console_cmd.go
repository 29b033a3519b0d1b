package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/migrations"
)

// DefaultConsoleAddr is where txbox console listens unless told otherwise: loopback only.
const DefaultConsoleAddr = "127.0.0.1:7070"

type consoleFlags struct {
	sourceFlags
	addr         string
	token        string
	readOnly     bool
	showPayloads bool
	basePath     string
}

func newConsoleCmd(g *globals) *cobra.Command {
	f := &consoleFlags{}
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the web console and its JSON API over one or more databases",
		Long: `console serves the operator console (package console): the outbox backlog per topic and the age of its oldest
row, dead letters of the outbox and the inbox with filters and paging, requeue, replay and drop (one or in bulk,
after a confirmation page), inbox keys per consumer, and the trace of a business key across every database
(and the broker, with --namesrv) — plus the same as a JSON API under /api/v1 for scripts.

It listens on 127.0.0.1:7070 unless --addr says otherwise. Every change needs the token (--token or
TXBOX_CONSOLE_TOKEN, at least 16 characters; the environment is the better place): API clients send
"Authorization: Bearer <token>", and the pages ask for it once (/login) and keep an HttpOnly, SameSite=Strict
session cookie; forms carry a CSRF token and must come from the console's own origin. --read-only serves
without any change (no token needed). Payloads stay hidden unless --show-payloads, and then are shown only to
logged-in users. Reads need no token: expose the console only to operators. SIGTERM or SIGINT stops it
gracefully.`,
		Example: `  export TXBOX_CONSOLE_TOKEN=$(openssl rand -hex 16)
  txbox console --databases databases.yaml --namesrv 127.0.0.1:9876
  curl -s 127.0.0.1:7070/api/v1/trace?key=12345 | jq '.events[].kind'
  txbox console --read-only --dialect postgres --dsn "$DSN"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runConsole(cmd, g, f) },
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", envOr("TXBOX_CONSOLE_ADDR", DefaultConsoleAddr), "listen address (env TXBOX_CONSOLE_ADDR)")
	// The token is read from the environment in runConsole, never as the flag's default, which --help prints.
	fl.StringVar(&f.token, "token", "", "token that authorizes changes, at least 16 characters (env TXBOX_CONSOLE_TOKEN)")
	fl.BoolVar(&f.readOnly, "read-only", false, "refuse every change; no token needed")
	fl.BoolVar(&f.showPayloads, "show-payloads", false, "show dead letters' payloads to logged-in users")
	fl.StringVar(&f.basePath, "base-path", "", "serve under this path, e.g. /txbox (behind a reverse proxy)")
	return cmd
}

func runConsole(cmd *cobra.Command, g *globals, f *consoleFlags) error {
	if f.token == "" {
		f.token = os.Getenv("TXBOX_CONSOLE_TOKEN")
	}
	if f.token == "" && !f.readOnly {
		return usageError{errors.New("no token: pass --token or set TXBOX_CONSOLE_TOKEN (every change needs it), or serve --read-only")}
	}
	host, _, err := net.SplitHostPort(f.addr)
	if err != nil {
		return usageError{fmt.Errorf("--addr %q: want host:port, e.g. %s", f.addr, DefaultConsoleAddr)}
	}
	log, err := g.logger()
	if err != nil {
		return err
	}
	c, dbs, err := f.build(cmd, g, console.Config{Token: f.token, ReadOnly: f.readOnly, ShowPayloads: f.showPayloads,
		BasePath: strings.TrimSuffix(f.basePath, "/"), Logger: log})
	if err != nil {
		return err
	}
	defer dbs.close()
	dbs.check(cmd.Context(), g.timeout, log)

	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		log.Warn("txbox console: listening beyond this machine; reads need no token", "addr", ln.Addr().String())
	}
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("txbox console: serving", "url", "http://"+ln.Addr().String()+strings.TrimSuffix(f.basePath, "/")+"/",
		"databases", strings.Join(c.Databases(), ","), "read_only", f.readOnly, "show_payloads", f.showPayloads)
	select {
	case err := <-done:
		return fmt.Errorf("console server: %w", err)
	case <-cmd.Context().Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("console shutdown: %w", err)
	}
	log.Info("txbox console: stopped")
	return nil
}

// check pings every database and checks its schema, logging what is wrong: the console still starts (it shows
// the error where the database is used), and the operator sees the problem at once.
func (o *opened) check(ctx context.Context, timeout time.Duration, log *slog.Logger) {
	for i, e := range o.entries {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := o.dbs[i].PingContext(cctx)
		if err == nil {
			err = migrations.Check(cctx, o.dbs[i].DB, e.Dialect, migrations.WithPrefix(e.Prefix))
		}
		cancel()
		if err != nil {
			log.Warn("txbox console: database not ready", "db", e.Name, "dsn", dsnWhere(e.Dialect, e.DSN), "error", err)
		}
	}
}
