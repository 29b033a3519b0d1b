package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/examples/orders/internal/gateway"
	"github.com/txbox/txbox/examples/orders/internal/store"
)

// Report is what a demo run did and what the databases hold afterwards.
type Report struct {
	Dialect        string
	Orders         int           // asked for
	Created        int           // POST /orders answered 201
	CreateElapsed  time.Duration // how long creating them took (the rest of the run is the services catching up)
	Faults         bus.Faults
	HandlerTimeout time.Duration
	Elapsed        time.Duration // from start to settled
	WithoutInbox   bool          // the services applied every delivery (Config.WithoutInbox)

	OrderService   bus.StatsSnapshot // consumes payment-completed, publishes order-created
	PaymentService bus.StatsSnapshot // consumes order-created, publishes payment-completed
	Gateway        gateway.Stats     // what the payment gateway saw

	// From the databases, read by the demo itself after the run.
	OrderRows        int // rows in orders
	OrdersPaid       int // orders with status paid
	PaymentEventsOne int // orders whose payment-completed effect was applied exactly once
	ChargesOne       int // orders charged exactly once (payment_charges)
	ChargesMax       int // most charges of one order
	Charges          int // rows in payment_charges
	Uncharged        int // orders with no charge
	GatewayOne       int // orders the gateway charged exactly once
	GatewayMax       int // most gateway charges of one order
	GatewayUncharged int // orders the gateway never charged
	LatencyP50       time.Duration
	LatencyP99       time.Duration
	LatencyMax       time.Duration
}

// collect reads the invariants' evidence from both databases through pools of its own.
func (r *Report) collect(ctx context.Context, cfg Config) error {
	open := func(dsn string) (*sqlx.DB, error) {
		db, err := sqlx.Open(store.Driver(cfg.Dialect), dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(2)
		return db, nil
	}
	odb, err := open(cfg.OrderDSN)
	if err != nil {
		return err
	}
	defer odb.Close()
	pdb, err := open(cfg.PaymentDSN)
	if err != nil {
		return err
	}
	defer pdb.Close()

	err = odb.QueryRowContext(ctx, `SELECT COUNT(*),
		COALESCE(SUM(CASE WHEN status = 'paid' THEN 1 ELSE 0 END), 0),
		COALESCE(SUM(CASE WHEN payment_events = 1 THEN 1 ELSE 0 END), 0) FROM orders`).
		Scan(&r.OrderRows, &r.OrdersPaid, &r.PaymentEventsOne)
	if err != nil {
		return fmt.Errorf("demo: read orders: %w", err)
	}
	var lat []int64
	if err := odb.SelectContext(ctx, &lat, `SELECT paid_us - created_us FROM orders WHERE paid_us IS NOT NULL`); err != nil {
		return fmt.Errorf("demo: read latencies: %w", err)
	}
	slices.Sort(lat)
	r.LatencyP50, r.LatencyP99 = percentile(lat, 50), percentile(lat, 99)
	if len(lat) > 0 {
		r.LatencyMax = time.Duration(lat[len(lat)-1]) * time.Microsecond
	}

	var perOrder []int
	if err := pdb.SelectContext(ctx, &perOrder, `SELECT COUNT(*) FROM payment_charges GROUP BY order_id`); err != nil {
		return fmt.Errorf("demo: read charges: %w", err)
	}
	for _, n := range perOrder {
		r.Charges += n
		if n == 1 {
			r.ChargesOne++
		}
		r.ChargesMax = max(r.ChargesMax, n)
	}
	r.Uncharged = r.OrderRows - len(perOrder)

	var ids []string
	if err := odb.SelectContext(ctx, &ids, `SELECT id FROM orders`); err != nil {
		return fmt.Errorf("demo: read order ids: %w", err)
	}
	for _, id := range ids {
		n := r.Gateway.PerOrder[id]
		switch n {
		case 0:
			r.GatewayUncharged++
		case 1:
			r.GatewayOne++
		}
		r.GatewayMax = max(r.GatewayMax, n)
	}
	return nil
}

func percentile(sorted []int64, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // nearest rank
	return time.Duration(sorted[max(i-1, 0)]) * time.Microsecond
}

// Check returns an error naming every invariant the run broke, nil when all hold.
func (r Report) Check() error {
	var errs []error
	if r.Created != r.Orders || r.OrderRows != r.Orders {
		errs = append(errs, fmt.Errorf("orders: asked for %d, %d created, %d in the database", r.Orders, r.Created, r.OrderRows))
	}
	if r.ChargesOne != r.OrderRows || r.Uncharged != 0 || r.Charges != r.OrderRows {
		errs = append(errs, fmt.Errorf("payments: %d of %d orders charged exactly once (%d charges, %d orders uncharged, at most %d for one order)",
			r.ChargesOne, r.OrderRows, r.Charges, r.Uncharged, r.ChargesMax))
	}
	if r.GatewayOne != r.OrderRows || r.Gateway.Charges != r.OrderRows {
		errs = append(errs, fmt.Errorf("gateway: %d of %d orders charged exactly once (%d charges, %d orders uncharged, at most %d for one order)",
			r.GatewayOne, r.OrderRows, r.Gateway.Charges, r.GatewayUncharged, r.GatewayMax))
	}
	if r.OrdersPaid != r.OrderRows {
		errs = append(errs, fmt.Errorf("orders paid: %d of %d", r.OrdersPaid, r.OrderRows))
	}
	if r.PaymentEventsOne != r.OrderRows {
		errs = append(errs, fmt.Errorf("payment-completed applied exactly once to %d of %d orders", r.PaymentEventsOne, r.OrderRows))
	}
	return errors.Join(errs...)
}

// Print writes the report for people.
func (r Report) Print(w io.Writer) {
	o, p := r.OrderService, r.PaymentService
	all := o.Add(p)
	var b strings.Builder
	row := func(label, format string, args ...any) {
		fmt.Fprintf(&b, "  %-28s %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(&b, "txbox orders demo on %s: %d orders in %s\n", r.Dialect, r.Orders, r.Elapsed.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "  faults injected: %d%% lost ACKs, %d%% slow handlers (deadline %s), %d%% producer re-sends, "+
		"%d%% gateway answers lost\n\n", r.Faults.LostAckPercent, r.Faults.SlowPercent, r.HandlerTimeout,
		r.Faults.ResendPercent, r.Faults.LostResponsePercent)
	if r.WithoutInbox {
		fmt.Fprintf(&b, "  WITHOUT the inbox: every delivery is applied, duplicates included\n")
	}
	row("orders created", "%d in %s  (POST /orders; a burst builds a queue that the latency below includes)",
		r.Created, r.CreateElapsed.Round(100*time.Millisecond))
	row("messages published", "%d  (order-created %d, payment-completed %d; %d of them re-sends)",
		all.Published, o.Published, p.Published, all.Resent)
	row("messages delivered", "%d  (order-created %d, payment-completed %d)", all.Delivered, p.Delivered, o.Delivered)
	row("duplicates absorbed", "%d", all.Duplicates())
	row("  after a lost ACK", "%d  (%d ACKs lost after commit)", all.DuplicateLostAck, all.LostAcksInjected)
	row("  after a producer re-send", "%d  (%d messages sent twice)", all.DuplicateResent, all.Resent)
	row("  other redeliveries", "%d", all.DuplicateOther)
	row("slow handlers rolled back", "%d  (redelivered, then processed once)", all.TimeoutsRolledBack)
	row("gateway answers lost", "%d  (charged, but the service saw an error: redelivered, charged again under the same key)",
		p.LostResponses)
	row("gateway calls", "%d  (%d charges; %d repeated an Idempotency-Key and got the first charge back)",
		r.Gateway.Calls, r.Gateway.Charges, r.Gateway.Replays)
	row("charges found in records", "%d  (duplicates absorbed by the effect records: no gateway call)",
		p.EffectDuplicates)
	if all.Failed > 0 {
		row("other failed deliveries", "%d  (redelivered)", all.Failed)
	}
	if all.Parked > 0 {
		row("parked (dead letters)", "%d", all.Parked)
	}
	row("payments per order", "%s  (%d charges for %d orders, most for one order: %d)",
		verdict(r.ChargesOne == r.OrderRows && r.Uncharged == 0, "exactly 1", "NOT exactly 1"), r.Charges, r.OrderRows, r.ChargesMax)
	row("gateway charges per order", "%s  (%d charges for %d orders, most for one order: %d)",
		verdict(r.GatewayOne == r.OrderRows && r.Gateway.Charges == r.OrderRows, "exactly 1", "NOT exactly 1"),
		r.Gateway.Charges, r.OrderRows, r.GatewayMax)
	row("orders paid", "%d of %d  (payment applied exactly once to %d)", r.OrdersPaid, r.OrderRows, r.PaymentEventsOne)
	row("end-to-end latency", "p50 %s  p99 %s  max %s  (order committed → order paid)",
		ms(r.LatencyP50), ms(r.LatencyP99), ms(r.LatencyMax))
	if err := r.Check(); err != nil {
		row("invariants", "FAILED")
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(&b, "    - %s\n", line)
		}
	} else {
		row("invariants", "OK: every order charged once (ledger and gateway) and paid once")
	}
	_, _ = io.WriteString(w, b.String())
}

func verdict(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
