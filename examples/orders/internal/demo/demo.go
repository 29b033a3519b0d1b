package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/gateway"
	"github.com/txbox/txbox/examples/orders/internal/orderservice"
	"github.com/txbox/txbox/examples/orders/internal/paymentservice"
)

// Config configures Run.
type Config struct {
	Dialect     dialect.Dialect // required
	OrderDSN    string          // required: the order service's database (empty, or from an earlier run)
	PaymentDSN  string          // required: the payment service's database
	NameServers []string        // required
	// OrderCreatedTopic and PaymentCompletedTopic must exist; use fresh ones per run so that an earlier run's
	// messages are not consumed.
	OrderCreatedTopic     string
	PaymentCompletedTopic string
	// GroupSuffix makes the consumer groups unique to the run (they start at the topics' first offset).
	GroupSuffix string
	Orders      int           // default 1000
	Clients     int           // concurrent HTTP clients; default 16
	Rate        int           // orders per second; 0 (default): as fast as the clients go, a burst
	Faults      bus.Faults    // failures to inject
	Deadline    time.Duration // for everything to settle after the last order; default 3m
	// HandlerTimeout is both services' inbox handler deadline. Default 2s: short, so the injected slow handlers
	// roll back quickly, yet far above a normal handler's few milliseconds even on a loaded machine (a handler
	// that misses it is rolled back and redelivered, which is correct but slows the run down).
	HandlerTimeout time.Duration
	// WithoutInbox makes both services apply every delivery in a plain transaction, as consumers without txbox
	// do: the same faults then charge and pay orders more than once, and the report says so.
	WithoutInbox bool
	Progress     io.Writer    // a progress line while it runs; nil for none
	Logger       *slog.Logger // the services' logs; default discard
}

// DefaultFaults is what the demo injects unless told otherwise.
var DefaultFaults = bus.Faults{LostAckPercent: 5, SlowPercent: 2, ResendPercent: 5, LostResponsePercent: 2}

func (c *Config) setDefaults() error {
	if c.Dialect == nil || c.OrderDSN == "" || c.PaymentDSN == "" || len(c.NameServers) == 0 ||
		c.OrderCreatedTopic == "" || c.PaymentCompletedTopic == "" {
		return errors.New("demo: Dialect, OrderDSN, PaymentDSN, NameServers and both topics are required")
	}
	if c.Orders == 0 {
		c.Orders = 1000
	}
	if c.Orders < 0 {
		return fmt.Errorf("demo: Orders must be positive, not %d", c.Orders)
	}
	if c.Clients == 0 {
		c.Clients = 16
	}
	if c.Rate < 0 {
		return fmt.Errorf("demo: Rate must not be negative, not %d", c.Rate)
	}
	if c.Deadline == 0 {
		c.Deadline = 3 * time.Minute
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c.Faults.Validate()
}

// Run runs the demo and returns its report. An error means the demo could not run to the end (a service did
// not start, the deadline passed); invariants are checked by Report.Check.
func Run(ctx context.Context, cfg Config) (rep Report, err error) {
	if err := cfg.setDefaults(); err != nil {
		return Report{}, err
	}
	start := time.Now()
	// The payment gateway the payment service charges, here so that the report can count its charges.
	gw, err := gateway.Start("127.0.0.1:0")
	if err != nil {
		return Report{}, err
	}
	defer gw.Close()
	orders, err := orderservice.New(ctx, orderservice.Config{
		Dialect: cfg.Dialect, DSN: cfg.OrderDSN, NameServers: cfg.NameServers, Listen: "127.0.0.1:0",
		OrderCreatedTopic: cfg.OrderCreatedTopic, PaymentCompletedTopic: cfg.PaymentCompletedTopic,
		Group: bus.OrderGroup + cfg.GroupSuffix, HandlerTimeout: cfg.HandlerTimeout, FromFirstOffset: true,
		WithoutInbox: cfg.WithoutInbox, Faults: cfg.Faults, Logger: cfg.Logger,
	})
	if err != nil {
		return Report{}, err
	}
	payments, err := paymentservice.New(ctx, paymentservice.Config{
		Dialect: cfg.Dialect, DSN: cfg.PaymentDSN, NameServers: cfg.NameServers, Listen: "127.0.0.1:0",
		OrderCreatedTopic: cfg.OrderCreatedTopic, PaymentCompletedTopic: cfg.PaymentCompletedTopic,
		Group: bus.PaymentGroup + cfg.GroupSuffix, HandlerTimeout: cfg.HandlerTimeout, FromFirstOffset: true,
		WithoutInbox: cfg.WithoutInbox, Faults: cfg.Faults, Logger: cfg.Logger, GatewayURL: gw.URL(),
	})
	if err != nil {
		_ = orders.Close()
		return Report{}, err
	}

	// The services run until the report's counts are final; their own shutdown is part of the demo.
	svcCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = orders.Run(svcCtx) })
	wg.Go(func() { errs[1] = payments.Run(svcCtx) })
	defer func() {
		stop()
		wg.Wait()
		err = errors.Join(err, errs[0], errs[1])
	}()

	p := progress{w: cfg.Progress, start: start}
	var created atomic.Int64
	rep = Report{Dialect: cfg.Dialect.Name(), Orders: cfg.Orders, Faults: cfg.Faults, HandlerTimeout: cfg.HandlerTimeout,
		WithoutInbox: cfg.WithoutInbox}
	createStart := time.Now()
	if err := createOrders(ctx, cfg, "http://"+orders.Addr(), &created, func() {
		p.line(created.Load(), cfg.Orders, orders, payments)
	}); err != nil {
		p.done()
		return rep, err
	}
	rep.Created = int(created.Load())
	rep.CreateElapsed = time.Since(createStart)

	// Settled: every order paid and every duplicate the faults produced has been delivered and absorbed.
	// Faults pick messages by key alone, so the counts are known: one redelivery per injected lost ACK, one
	// extra copy per re-send.
	deadline := time.Now().Add(cfg.Deadline)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		o, pay := orders.Stats(), payments.Stats()
		p.line(created.Load(), cfg.Orders, orders, payments)
		if settled(int64(rep.Created), o, pay, cfg.WithoutInbox) {
			break
		}
		if time.Now().After(deadline) {
			p.done()
			var unpaid []string
			_ = orders.DB().SelectContext(ctx, &unpaid, `SELECT id FROM orders WHERE status <> 'paid' ORDER BY id LIMIT 5`)
			return rep, fmt.Errorf("demo: not settled after %s (unpaid orders include %v): order service %+v, payment service %+v",
				cfg.Deadline, unpaid, o, pay)
		}
		select {
		case <-ctx.Done():
			p.done()
			return rep, ctx.Err()
		case <-tick.C:
		}
	}
	p.done()
	rep.OrderService, rep.PaymentService = orders.Stats(), payments.Stats()
	rep.Gateway = gw.Stats()
	rep.Elapsed = time.Since(start)
	if err := rep.collect(ctx, cfg); err != nil {
		return rep, err
	}
	return rep, nil
}

// settled reports whether every delivery the run causes has been handled. With the inbox: each order
// processed once by each service, and one absorbed duplicate per injected lost ACK and per re-send. Without
// it every delivery is applied, so each service must have applied its upstream's messages, the lost ACKs'
// redeliveries and the re-sent copies.
func settled(orders int64, o, pay bus.StatsSnapshot, withoutInbox bool) bool {
	if withoutInbox {
		return pay.Processed >= orders+pay.LostAcksInjected+o.Resent &&
			o.Processed >= pay.Processed+o.LostAcksInjected+pay.Resent
	}
	return o.Processed >= orders && pay.Processed >= orders &&
		o.DuplicateLostAck >= o.LostAcksInjected && pay.DuplicateLostAck >= pay.LostAcksInjected &&
		pay.DuplicateResent >= o.Resent && o.DuplicateResent >= pay.Resent
}

// createOrders posts cfg.Orders orders from cfg.Clients goroutines.
func createOrders(ctx context.Context, cfg Config, base string, created *atomic.Int64, tick func()) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	client := &http.Client{Timeout: 30 * time.Second}
	next := make(chan int)
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			for i := range next {
				if err := postOrder(ctx, client, base, int64(1000+i%9000)); err != nil {
					cancel(err)
					return
				}
				created.Add(1)
			}
		})
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	var pace <-chan time.Time // nil (never ready) without a rate
	if cfg.Rate > 0 {
		p := time.NewTicker(time.Second / time.Duration(cfg.Rate))
		defer p.Stop()
		pace = p.C
	}
feed:
	for i := range cfg.Orders {
		if pace != nil {
			select {
			case <-pace:
			case <-ctx.Done():
				break feed
			}
		}
		for {
			select {
			case next <- i:
				continue feed
			case <-ctx.Done():
				break feed
			case <-t.C:
				tick()
			}
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("demo: create orders: %w", err)
	}
	return nil
}

func postOrder(ctx context.Context, client *http.Client, base string, cents int64) error {
	body, _ := json.Marshal(orderservice.CreateRequest{AmountCents: cents})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/orders", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("POST /orders: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// TopicCreator creates a topic with the given number of queues and returns once its route is published (a
// consumer cannot start without one).
type TopicCreator func(ctx context.Context, topic string, queues int) error

// ScriptTopicCreator creates topics with the repository's scripts/rocketmq.sh (script is its path).
func ScriptTopicCreator(script string) TopicCreator {
	return func(ctx context.Context, topic string, queues int) error {
		return bus.CreateTopic(ctx, script, topic, queues)
	}
}

// PrepareBroker creates the run's topics and its groups' retry topics, so that the consumers start with
// every route in place.
func PrepareBroker(ctx context.Context, create TopicCreator, cfg Config) error {
	for _, t := range []struct {
		name   string
		queues int
	}{
		{cfg.OrderCreatedTopic, 4},
		{cfg.PaymentCompletedTopic, 4},
		{bus.RetryTopic(bus.OrderGroup + cfg.GroupSuffix), 1},
		{bus.RetryTopic(bus.PaymentGroup + cfg.GroupSuffix), 1},
	} {
		if err := create(ctx, t.name, t.queues); err != nil {
			return fmt.Errorf("demo: create topic %s: %w", t.name, err)
		}
	}
	return nil
}
