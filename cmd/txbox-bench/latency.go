package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// benchLatency produces rate messages/s (one per transaction, from several producers) for d while a relay
// with default settings runs, and returns the p50 and p99 of commit-to-publish in milliseconds. The commit
// time is taken when Commit returns, so the figure slightly understates the true latency.
func benchLatency(db *sqlx.DB, d dialect.Dialect, rate int, dur time.Duration) (p50, p99 float64, err error) {
	ctx := context.Background()
	ob, err := outbox.New(outbox.Config{Dialect: d})
	if err != nil {
		return 0, 0, err
	}
	var mu sync.Mutex
	committed := map[string]time.Time{}
	published := map[string]time.Time{}
	pub := relay.PublisherFunc(func(_ context.Context, r outbox.Record) error {
		now := time.Now()
		mu.Lock()
		if _, ok := published[r.Key]; !ok {
			published[r.Key] = now
		}
		mu.Unlock()
		return nil
	})
	r, err := relay.New(db, relay.Config{Dialect: d, Publisher: pub})
	if err != nil {
		return 0, 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()

	total := int(dur.Seconds() * float64(rate))
	tokens := make(chan int, total)
	var pwg sync.WaitGroup
	errs := make(chan error, *producer)
	for range *producer {
		pwg.Go(func() {
			for i := range tokens {
				key := strconv.Itoa(i)
				tx, err := db.BeginTx(ctx, nil)
				if err == nil {
					err = ob.Enqueue(ctx, tx, outbox.Message{Topic: "lat", Key: key, Payload: []byte("x")})
					if err == nil {
						err = tx.Commit()
					} else {
						_ = tx.Rollback()
					}
				}
				if err != nil {
					errs <- err
					return
				}
				now := time.Now()
				mu.Lock()
				committed[key] = now
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for i := range total {
		// Pace by the clock, not a ticker: the schedule catches up after a stall instead of drifting.
		if wait := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); wait > 0 {
			time.Sleep(wait)
		}
		tokens <- i
	}
	close(tokens)
	pwg.Wait()
	close(errs)
	for err := range errs {
		stop()
		<-done
		return 0, 0, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(published)
		mu.Unlock()
		if n >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		return 0, 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	if len(published) < total {
		return 0, 0, fmt.Errorf("only %d of %d messages published", len(published), total)
	}
	lat := make([]float64, 0, total)
	for k, c := range committed {
		lat = append(lat, max(0, float64(published[k].Sub(c).Microseconds())/1000))
	}
	slices.Sort(lat)
	elapsed := time.Since(start)
	_ = elapsed
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}

var _ = dialect.MySQL
