package rocketmq_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
)

func TestRefusalClassification(t *testing.T) {
	for msg, permanent := range map[string]bool{
		"CODE: 13, DESC: the message is illegal, maybe msg body or properties length not matched. msg body length limit 4194304B, msg properties length limit 32KB.": true,
		"CODE: 13, DESC: message topic length too long 200":                                                 true,
		"CODE: 29, DESC: The specified topic contains illegal characters, allowing only ^[%|a-zA-Z0-9_-]+$": true,
		"CODE: 29, DESC: The specified topic is longer than topic max length.":                              true,
		"CODE: 29, DESC: request queueId[7] is illegal, TopicConfig [...] Producer: 127.0.0.1:5000":         false,
		"CODE: 16, DESC: Sending message to topic[SCHEDULE_TOPIC_XXXX] is forbidden.":                       true,
		"CODE: 16, DESC: the broker[127.0.0.1] sending message is forbidden":                                false,
		"CODE: 17, DESC: topic[x] not exist, apply first please!":                                           false,
		"CODE: 2, DESC: [PC_SYNCHRONIZED]broker busy, start flow control for a while":                       false,
		"CODE: 14, DESC: service not available now.":                                                        false,
		"the topic=x route info not found":                                                                  false,
		"send request failed: CODE: 13, DESC: not the client's own report, so not trusted":                  false,
	} {
		err := rocketmq.Refusal(errors.New(msg))
		if got := err != nil; got != permanent {
			t.Errorf("%q: permanent = %v, want %v", msg, got, permanent)
			continue
		}
		if permanent && (!errors.Is(err, rocketmq.ErrRefused) || !errors.Is(err, relay.ErrPermanent) || !strings.Contains(err.Error(), msg)) {
			t.Errorf("%q: %v, want ErrRefused and relay.ErrPermanent with the broker's answer", msg, err)
		}
	}
}

// listener accepts connections on a loopback port and counts them, standing in for a name server.
func listener(t *testing.T) (addr string, accepted *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String(), accepted
}

// Bodies of 20 to 64 MiB made the broker drop the connection at every retry: Publish refuses them, and anything
// over MaxMessageSize, before the client contacts anything.
func TestOversizedRecordIsNeverSent(t *testing.T) {
	addr, accepted := listener(t)
	p, err := rocketmq.New(rocketmq.Config{NameServers: []string{addr}, SendTimeout: time.Second, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, n := range []int{4<<20 + 1, 20 << 20, 64 << 20} {
		r := outbox.Record{ID: 1, Message: outbox.Message{Topic: "orders", Key: "k", Payload: make([]byte, n)}}
		err := p.Publish(context.Background(), r)
		if !errors.Is(err, rocketmq.ErrInvalidMessage) || !errors.Is(err, relay.ErrPermanent) || !strings.Contains(err.Error(), "payload") {
			t.Errorf("%d-byte payload: Publish = %v, want ErrInvalidMessage and relay.ErrPermanent naming the payload", n, err)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the client connected %d times for records it must refuse", n)
	}
}

// A random payload of exactly the broker's maxMessageSize grows when zlib compresses it; the client used to send
// the longer body and the broker refused it (CODE 13) at every retry. A compressible one is still compressed.
func TestMaxSizePayloadIsSent(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	topic := b.Topic(t, 1)
	p := newPublisher(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	payloads := map[string][]byte{
		"random":       randomBytes(rocketmq.DefaultMaxMessageSize),
		"compressible": []byte(strings.Repeat("order 12345 paid; ", rocketmq.DefaultMaxMessageSize/18)),
	}
	for k, payload := range payloads {
		if err := p.Publish(ctx, outbox.Record{ID: 1, Message: outbox.Message{Topic: topic, Key: k, Payload: payload}}); err != nil {
			t.Fatalf("%s payload of %d bytes: %v", k, len(payload), err)
		}
	}
	got := b.Collect(t, topic)
	for range payloads {
		select {
		case m := <-got:
			k := m.GetKeys()
			if want := payloads[k]; string(m.Body) != string(want) {
				t.Fatalf("%s: received %d bytes, sent %d", k, len(m.Body), len(want))
			}
			if compressed := m.SysFlag&primitive.FlagCompressed != 0; compressed != (k == "compressible") {
				t.Errorf("%s: stored compressed = %v", k, compressed)
			}
		case <-ctx.Done():
			t.Fatal("messages did not arrive")
		}
	}
}

// Refusals the broker returns that no retry can change are permanent at once: a body over the broker's
// maxMessageSize (a Publisher configured for a larger broker) is a dead letter after one attempt, with the
// broker's answer; an illegal topic (sent without the check) is refused as CODE 29.
func TestBrokerRefusalsArePermanent(t *testing.T) {
	b := rmqtest.Get(t)
	topic := b.Topic(t, 1)
	p, err := rocketmq.New(rocketmq.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "P"),
		MaxMessageSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bad := primitive.NewMessage("bad topic!", []byte("x"))
	bad.WithKeys([]string{"k"})
	if err := p.SendUnchecked(ctx, bad); !errors.Is(err, rocketmq.ErrRefused) || !strings.Contains(err.Error(), "CODE: 29") {
		t.Fatalf("illegal topic: %v, want ErrRefused with the broker's CODE 29", err)
	}

	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ob, err := outbox.New(outbox.Config{Dialect: db.Dialect, MaxPayloadBytes: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		huge := outbox.Message{Topic: topic, Key: "too-big", Payload: randomBytes(5 << 20)}
		if err := ob.Enqueue(ctx, db, huge, outbox.Message{Topic: topic, Key: "fine", Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		r, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Publisher: p, MaxAttempts: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		dead, err := ob.DeadLetters(ctx, db, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].Key != "too-big" || dead[0].Attempt != 1 || !strings.Contains(dead[0].LastError, "CODE: 13") {
			t.Fatalf("dead letters %+v, want too-big after one attempt with the broker's CODE 13", dead)
		}
		var left int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM txbox_outbox").Scan(&left); err != nil || left != 0 {
			t.Fatalf("%d rows left in the outbox (%v)", left, err)
		}
	})
}
