package rocketmq_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
)

// Benchmark sizes: every op moves benchMessages messages of benchPayload bytes with benchConcurrency sends in
// flight. Run both with the same flags and compare msgs/s (medians over -count runs):
//
//	go test -run '^$' -bench 'BenchmarkRelayToBroker|BenchmarkBareSendSync' -benchtime 3x -count 5 ./relay/rocketmq/
const (
	benchMessages    = 5000
	benchPayload     = 256
	benchConcurrency = 64 // relay: Workers 2 × PublishConcurrency 32
)

// BenchmarkBareSendSync is the yardstick: rocketmq-client-go's SendSync in benchConcurrency goroutines, with the
// same queue selector, keys and payload as the publisher, and no database.
func BenchmarkBareSendSync(b *testing.B) {
	br := rmqtest.Get(b)
	topic := br.Topic(b, 4)
	p, err := rmq.NewProducer(producer.WithNameServer(br.NameServers()), producer.WithGroupName(rmqtest.Name(b, "P")),
		producer.WithInstanceName(rmqtest.Name(b, "I")), producer.WithQueueSelector(producer.NewHashQueueSelector()))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	defer p.Shutdown()
	payload := make([]byte, benchPayload)
	send := func(i int) error {
		m := primitive.NewMessage(topic, payload)
		key := fmt.Sprintf("bench/%d", i)
		m.WithKeys([]string{key})
		m.WithProperty("TXBOX_KEY", key)
		res, err := p.SendSync(context.Background(), m)
		if err == nil && res.Status != primitive.SendOK {
			err = fmt.Errorf("status %d", res.Status)
		}
		return err
	}
	if err := send(-1); err != nil { // route loaded before the clock starts
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range benchConcurrency {
			wg.Go(func() {
				for i := next.Add(1); i <= benchMessages; i = next.Add(1) {
					if send(int(i)) != nil {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d sends failed", failed.Load())
		}
	}
	b.ReportMetric(float64(b.N*benchMessages)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkRelayToBroker drains benchMessages outbox rows (PostgreSQL, pgx) through relay.Relay and this
// Publisher: claim, publish with SendOK checked, delete. Enqueueing is not timed. MaxBatch=1 is the Publisher
// without batching.
func BenchmarkRelayToBroker(b *testing.B) {
	for _, maxBatch := range []int{rocketmq.DefaultMaxBatch, 1} {
		b.Run(fmt.Sprintf("MaxBatch=%d", maxBatch), func(b *testing.B) { benchRelay(b, maxBatch) })
	}
}

func benchRelay(b *testing.B, maxBatch int) {
	br := rmqtest.Get(b)
	topic := br.Topic(b, 4)
	db := testdb.Open(b, target(b, "postgres-pgx"))
	ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
	if err != nil {
		b.Fatal(err)
	}
	pub, err := rocketmq.New(rocketmq.Config{NameServers: br.NameServers(), Group: rmqtest.Name(b, "P"), MaxBatch: maxBatch})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	r, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Publisher: pub, Workers: 2, PublishConcurrency: benchConcurrency / 2})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	payload := make([]byte, benchPayload)
	enqueue := func(round int) {
		for start := 0; start < benchMessages; start += 500 {
			msgs := make([]outbox.Message, 0, 500)
			for i := start; i < start+500; i++ {
				msgs = append(msgs, outbox.Message{Topic: topic, Key: fmt.Sprintf("bench/%d/%d", round, i), Payload: payload})
			}
			tx, err := db.BeginTxx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := ob.Enqueue(ctx, tx, msgs...); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Warm up: route loaded, connections open.
	if err := pub.Publish(ctx, outbox.Record{ID: 0, Message: outbox.Message{Topic: topic, Key: "warm", Payload: payload}}); err != nil {
		b.Fatal(err)
	}
	var elapsed time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		enqueue(i)
		b.StartTimer()
		start := time.Now()
		n, err := r.Drain(ctx)
		elapsed += time.Since(start)
		if err != nil || n != benchMessages {
			b.Fatalf("drained %d (%v), want %d", n, err, benchMessages)
		}
	}
	b.ReportMetric(float64(b.N*benchMessages)/elapsed.Seconds(), "msgs/s")
}

func target(t testing.TB, name string) testdb.Target {
	for _, tg := range testdb.Targets {
		if tg.Name == name {
			return tg
		}
	}
	t.Fatalf("no target %s", name)
	return testdb.Target{}
}

// BenchmarkPublisherDirect is the Publisher without the relay: benchConcurrency goroutines calling Publish. It
// separates the Publisher's own cost (mapping, SendOK check) from the relay's (claim, delete, commit).
func BenchmarkPublisherDirect(b *testing.B) {
	br := rmqtest.Get(b)
	topic := br.Topic(b, 4)
	pub := newPublisher(b, br)
	payload := make([]byte, benchPayload)
	ctx := context.Background()
	if err := pub.Publish(ctx, outbox.Record{Message: outbox.Message{Topic: topic, Key: "warm", Payload: payload}}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for round := range b.N {
		var next atomic.Int64
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range benchConcurrency {
			wg.Go(func() {
				for i := next.Add(1); i <= benchMessages; i = next.Add(1) {
					r := outbox.Record{ID: i, Message: outbox.Message{Topic: topic, Key: fmt.Sprintf("bench/%d/%d", round, i), Payload: payload}}
					if pub.Publish(ctx, r) != nil {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%d publishes failed", failed.Load())
		}
	}
	b.ReportMetric(float64(b.N*benchMessages)/time.Since(start).Seconds(), "msgs/s")
}
