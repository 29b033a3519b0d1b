package demo

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/txbox/txbox/examples/orders/internal/orderservice"
	"github.com/txbox/txbox/examples/orders/internal/paymentservice"
)

// progress writes one status line, rewritten in place on a terminal and at most every 2 s otherwise (logs).
type progress struct {
	w     io.Writer
	start time.Time
	last  time.Time
	drawn bool
}

func (p *progress) line(created int64, total int, o *orderservice.Service, pay *paymentservice.Service) {
	if p.w == nil {
		return
	}
	tty := isTerminal(p.w)
	if !tty && time.Since(p.last) < 2*time.Second {
		return
	}
	p.last = time.Now()
	ost, ps := o.Stats(), pay.Stats()
	all := ost.Add(ps)
	s := fmt.Sprintf("  %5.1fs  orders %d/%d created, %d paid · %d deliveries · %d duplicates absorbed · %d slow rolled back",
		time.Since(p.start).Seconds(), created, total, ost.Processed, all.Delivered, all.Duplicates(), all.TimeoutsRolledBack)
	if tty {
		fmt.Fprintf(p.w, "\r\033[K%s", s)
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, s)
	}
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
