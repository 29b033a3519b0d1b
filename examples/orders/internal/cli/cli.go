package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/service"
)

// Environment variables the services read (docker-compose.yml sets them; a test checks that it sets only
// these).
const (
	EnvDB                    = "TXBOX_DB"               // mysql, mariadb or postgres
	EnvDSN                   = "TXBOX_DSN"              // the service's own database
	EnvNameServer            = "TXBOX_ROCKETMQ_NAMESRV" // host:port[,host:port...]
	EnvListen                = "TXBOX_LISTEN"           // HTTP address
	EnvOrderCreatedTopic     = "TXBOX_ORDER_CREATED_TOPIC"
	EnvPaymentCompletedTopic = "TXBOX_PAYMENT_COMPLETED_TOPIC"
	EnvLogLevel              = "TXBOX_LOG_LEVEL" // debug, info (default), warn, error
)

// ServiceEnv lists every variable a service reads.
var ServiceEnv = []string{EnvDB, EnvDSN, EnvNameServer, EnvListen, EnvOrderCreatedTopic, EnvPaymentCompletedTopic, EnvLogLevel}

// Env returns the variable's value, or def when it is unset or empty.
func Env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Logger is a text logger on stderr at the level in TXBOX_LOG_LEVEL (default info). It also quiets
// rocketmq-client-go, which logs every rebalance at Info on its own.
func Logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(Env(EnvLogLevel, "info"))); err != nil {
		level = slog.LevelInfo
	}
	rlog.SetLogLevel("error")
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// SignalContext is cancelled by SIGINT or SIGTERM, which starts a graceful shutdown. A second signal kills
// the process the default way, because stop restores the default handling after the first.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// NameServers parses "host:port[,host:port...]" and resolves host names: rocketmq-client-go only accepts
// literal IP addresses, and in docker-compose the name server is a service name.
func NameServers(ctx context.Context, list string) ([]string, error) {
	var out []string
	for _, hp := range strings.Split(list, ",") {
		hp = strings.TrimSpace(hp)
		if hp == "" {
			continue
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return nil, fmt.Errorf("name server %q: want host:port: %w", hp, err)
		}
		if net.ParseIP(host) == nil {
			addrs, err := net.DefaultResolver.LookupHost(ctx, host)
			if err != nil || len(addrs) == 0 {
				return nil, fmt.Errorf("name server %q: cannot resolve %s: %v", hp, host, err)
			}
			host = addrs[0]
			for _, a := range addrs { // prefer IPv4: the broker advertises an IPv4 address too
				if ip := net.ParseIP(a); ip != nil && ip.To4() != nil {
					host = a
					break
				}
			}
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no RocketMQ name server: set %s (e.g. 127.0.0.1:9876)", EnvNameServer)
	}
	return out, nil
}

// Runner is a service New has built.
type Runner interface {
	Run(ctx context.Context) error
}

// Main is a service command's main: it reads the environment (listen is the default of TXBOX_LISTEN), builds
// the service with start, runs it until SIGINT or SIGTERM, and exits 1 on failure.
func Main(name, listen string, start func(context.Context, service.Config) (Runner, error)) {
	log := Logger()
	if err := runService(log, listen, start); err != nil {
		log.Error(name+" failed", "err", err)
		os.Exit(1)
	}
}

func runService(log *slog.Logger, listen string, start func(context.Context, service.Config) (Runner, error)) error {
	ctx, stop := SignalContext()
	defer stop()
	d, err := dialect.Parse(Env(EnvDB, ""))
	if err != nil {
		return fmt.Errorf("%s: %w", EnvDB, err)
	}
	ns, err := NameServers(ctx, Env(EnvNameServer, ""))
	if err != nil {
		return err
	}
	svc, err := start(ctx, service.Config{
		Dialect:               d,
		DSN:                   Env(EnvDSN, ""),
		NameServers:           ns,
		Listen:                Env(EnvListen, listen),
		OrderCreatedTopic:     Env(EnvOrderCreatedTopic, ""),
		PaymentCompletedTopic: Env(EnvPaymentCompletedTopic, ""),
		Logger:                log,
	})
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
