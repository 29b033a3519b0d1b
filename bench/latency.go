package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

const latencyProducers = 8

// runLatency is case (d), PostgreSQL through pgx (the driver whose relay listens for NOTIFY): -rate messages a
// second, one per transaction from 8 producers, for -latency-seconds while a relay with default settings runs,
// then -idle without messages and one more message. It reports commit→publish p50 and p99 of the steady run
// and the latency of the message after the idle time, with the default NotifyInterval and with -1 (every
// Enqueue notifies) in turn. Commit time is taken when Commit returns.
func runLatency(cs []column) bool {
	ok := true
	for _, c := range cs {
		if c.driver != "pgx" {
			continue
		}
		fmt.Fprintf(os.Stderr, "== latency (%s)\n", c.name)
		// The default NotifyInterval, and -1 (every Enqueue notifies, as before it existed), in turn.
		intervals := []time.Duration{outbox.DefaultNotifyInterval, -1}
		p50s, p99s, firsts := make([][]float64, 2), make([][]float64, 2), make([][]float64, 2)
		for rep := range *latReps {
			for k := range intervals {
				v := (rep + k) % len(intervals)
				err := withDB(c, func(db *sqlx.DB) error {
					p50, p99, first, err := latency(db, c, intervals[v])
					p50s[v], p99s[v], firsts[v] = append(p50s[v], p50), append(p99s[v], p99), append(firsts[v], first)
					return err
				})
				if err != nil {
					fmt.Printf("\nlatency: %v\n", err)
					return false
				}
			}
		}
		fmt.Printf("\ncommit→publish on PostgreSQL (%s), %d msg/s for %ds from %d producers, then %s idle (ms; median [min–max] of %d)\n",
			c.name, *rate, *latSeconds, latencyProducers, *idle, *latReps)
		type row struct {
			name string
			xs   []float64
			max  float64
		}
		var rows []row
		for v, iv := range intervals {
			tag := "NotifyInterval " + iv.String()
			if iv < 0 {
				tag = "NotifyInterval -1"
			}
			rows = append(rows, row{"p50, " + tag, p50s[v], 0}, row{"p99, " + tag, p99s[v], 25},
				row{"first after idle, " + tag, firsts[v], 25})
		}
		for _, r := range rows {
			verdict := ""
			if r.max > 0 {
				verdict = fmt.Sprintf(" target ≤ %.0f ms: ok", r.max)
				if median(r.xs) > r.max {
					verdict, ok = fmt.Sprintf(" target ≤ %.0f ms: MISSED", r.max), false
				}
			}
			fmt.Printf("%-40s %.2f [%.2f–%.2f]%s\n", r.name, median(r.xs), slices.Min(r.xs), slices.Max(r.xs), verdict)
		}
	}
	return ok
}

func latency(db *sqlx.DB, c column, notifyInterval time.Duration) (p50, p99, first float64, err error) {
	ctx := context.Background()
	ob, err := outbox.New(outbox.Config{Dialect: c.d, NotifyInterval: notifyInterval})
	if err != nil {
		return 0, 0, 0, err
	}
	var mu sync.Mutex
	published := map[string]time.Time{}
	arrived := make(chan string, 1)
	pub := relay.PublisherFunc(func(_ context.Context, r outbox.Record) error {
		mu.Lock()
		if _, ok := published[r.Key]; !ok {
			published[r.Key] = time.Now()
		}
		mu.Unlock()
		if strings.HasPrefix(r.Key, "after-idle") {
			arrived <- r.Key
		}
		return nil
	})
	r, err := relay.New(db, relay.Config{Dialect: c.d, Publisher: pub})
	if err != nil {
		return 0, 0, 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stop()
		if rerr := <-done; err == nil {
			err = rerr
		}
	}()
	enqueue := func(key string) (time.Time, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return time.Time{}, err
		}
		defer tx.Rollback() //nolint:errcheck // no-op after Commit
		if err := ob.Enqueue(ctx, tx, outbox.Message{Topic: "lat", Key: key, Payload: []byte("x")}); err != nil {
			return time.Time{}, err
		}
		if err := tx.Commit(); err != nil {
			return time.Time{}, err
		}
		return time.Now(), nil
	}

	total := *latSeconds * *rate
	committed := make([]time.Time, total)
	tokens := make(chan int, total)
	errs := make(chan error, latencyProducers)
	var wg sync.WaitGroup
	for range latencyProducers {
		wg.Go(func() {
			for i := range tokens {
				at, err := enqueue(strconv.Itoa(i))
				if err != nil {
					errs <- err
					return
				}
				committed[i] = at
			}
		})
	}
	start := time.Now()
	for i := range total {
		// Paced by the clock: the schedule catches up after a stall instead of drifting.
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(*rate))); wait > 0 {
			time.Sleep(wait)
		}
		tokens <- i
	}
	close(tokens)
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, 0, 0, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(published)
		mu.Unlock()
		if n >= total {
			break
		}
		if time.Now().After(deadline) {
			return 0, 0, 0, fmt.Errorf("only %d of %d messages published after 30s", n, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	lat := make([]float64, 0, total)
	for i, at := range committed {
		lat = append(lat, max(0, float64(published[strconv.Itoa(i)].Sub(at).Microseconds())/1000))
	}
	mu.Unlock()
	slices.Sort(lat)

	time.Sleep(*idle) // the relay goes idle: what the first message after it waits for is the point
	at, err := enqueue("after-idle")
	if err != nil {
		return 0, 0, 0, err
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		return 0, 0, 0, fmt.Errorf("the message after the idle time was not published within 30s")
	}
	mu.Lock()
	first = max(0, float64(published["after-idle"].Sub(at).Microseconds())/1000)
	mu.Unlock()
	return lat[len(lat)/2], lat[len(lat)*99/100], first, nil
}
