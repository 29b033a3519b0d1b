package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/cli"
	"github.com/txbox/txbox/examples/orders/internal/demo"
)

func main() {
	os.Exit(run())
}

func run() int {
	orders, _ := strconv.Atoi(cli.Env("TXBOX_DEMO_ORDERS", "1000"))
	var (
		db       = flag.String("db", cli.Env("TXBOX_DEMO_DB", "mariadb"), "database: mariadb (or mysql) or postgres")
		n        = flag.Int("orders", orders, "number of orders to create")
		clients  = flag.Int("clients", 16, "concurrent HTTP clients")
		rate     = flag.Int("rate", 0, "orders per second (0: as fast as the clients go)")
		lostAck  = flag.Int("lost-ack", demo.DefaultFaults.LostAckPercent, "percent of messages whose ACK is lost after commit")
		slow     = flag.Int("slow", demo.DefaultFaults.SlowPercent, "percent of messages whose first handler outlives its deadline")
		resend   = flag.Int("resend", demo.DefaultFaults.ResendPercent, "percent of messages the producer sends twice")
		lostResp = flag.Int("lost-response", demo.DefaultFaults.LostResponsePercent, "percent of orders whose first gateway answer is lost after the charge")
		timeout  = flag.Duration("handler-timeout", 2*time.Second, "inbox handler deadline in both services")
		deadline = flag.Duration("deadline", 3*time.Minute, "how long to wait for everything to settle")
		script   = flag.String("rocketmq-script", "scripts/rocketmq.sh", "path to scripts/rocketmq.sh (creates the run's topics)")
		verbose  = flag.Bool("v", false, "show the services' logs")
		noInbox  = flag.Bool("without-inbox", false, "apply every delivery in a plain transaction, as without txbox: expect double charges and exit 1")
	)
	flag.Parse()

	d, err := dialect.Parse(*db)
	if err != nil {
		return fail(err)
	}
	envDSN := map[string]string{"mysql": "TXBOX_MYSQL_DSN", "postgres": "TXBOX_POSTGRES_DSN"}[d.Name()]
	serverDSN := os.Getenv(envDSN)
	if serverDSN == "" || os.Getenv(cli.EnvNameServer) == "" {
		return fail(fmt.Errorf("%s and %s must be set: run `make demo`, or `scripts/services.sh up` and "+
			"`eval \"$(scripts/services.sh env)\"`", envDSN, cli.EnvNameServer))
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = cli.Logger()
	} else {
		cli.Logger() // quiets the RocketMQ client
	}
	ns, err := cli.NameServers(ctx, os.Getenv(cli.EnvNameServer))
	if err != nil {
		return fail(err)
	}

	run := randomHex(4)
	cfg := demo.Config{
		Dialect: d, NameServers: ns, Orders: *n, Clients: *clients, Rate: *rate,
		OrderCreatedTopic:     "txbox-demo-" + run + "-order-created",
		PaymentCompletedTopic: "txbox-demo-" + run + "-payment-completed",
		GroupSuffix:           "-" + run,
		Faults: bus.Faults{LostAckPercent: *lostAck, SlowPercent: *slow, ResendPercent: *resend,
			LostResponsePercent: *lostResp},
		HandlerTimeout: *timeout, Deadline: *deadline,
		WithoutInbox: *noInbox, Progress: os.Stderr, Logger: log,
	}
	fmt.Fprintf(os.Stderr, "txbox orders demo: %s, %d orders, run %s\n", *db, *n, run)
	fmt.Fprintln(os.Stderr, "  preparing databases txbox_demo_orders and txbox_demo_payments, topics and retry topics")
	if cfg.OrderDSN, cfg.PaymentDSN, err = demo.PrepareDatabases(ctx, d, serverDSN); err != nil {
		return fail(err)
	}
	if err := demo.PrepareBroker(ctx, demo.ScriptTopicCreator(*script), cfg); err != nil {
		return fail(err)
	}
	rep, err := demo.Run(ctx, cfg)
	if err != nil {
		return fail(err)
	}
	fmt.Println()
	rep.Print(os.Stdout)
	if err := lookCloser(ctx, os.Stdout, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "demo: trace an order:", err)
	}
	if rep.Check() != nil {
		return 1
	}
	return 0
}

func fail(err error) int {
	if err == context.Canceled {
		fmt.Fprintln(os.Stderr, "demo: interrupted")
	} else {
		fmt.Fprintln(os.Stderr, "demo:", err)
	}
	return 2
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
