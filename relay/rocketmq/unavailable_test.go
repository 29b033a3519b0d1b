package rocketmq_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/rocketmq"
)

// The client's failures to reach a broker match relay.ErrUnavailable (so the relay counts no attempt and opens the
// topic's breaker); an answer of the broker and the relay's own deadline do not.
func TestUnreachableBrokerIsUnavailable(t *testing.T) {
	t.Parallel()
	b := rmqtest.Get(t)
	topic := b.Topic(t, 1)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, c := range []struct {
		err         error
		unavailable bool
	}{
		{refused, true},
		{reset, true},
		{rmqerrors.ErrRequestTimeout, true},
		{fmt.Errorf("the topic=%s route info not found", topic), true},
		{rmqerrors.ErrBrokerNotFound, true},
		{errors.New("CODE: 13, DESC: the message body size over max value"), false},
		{errors.New("CODE: 2, DESC: [TIMEOUT_CLEAN_QUEUE]broker busy"), false},
	} {
		fail := func(context.Context, interface{}, interface{}, primitive.Invoker) error { return c.err }
		p := newPublisher(t, b, producer.WithInterceptor(fail))
		err := p.Publish(context.Background(), outbox.Record{ID: 1, Message: outbox.Message{Topic: topic, Key: "k"}})
		if !errors.Is(err, rocketmq.ErrSend) || errors.Is(err, relay.ErrUnavailable) != c.unavailable {
			t.Errorf("client error %v: Publish = %v; want ErrSend, ErrUnavailable %v", c.err, err, c.unavailable)
		}
	}
	// The caller's deadline passing during the send is not an outage.
	slow := func(ctx context.Context, _, _ interface{}, _ primitive.Invoker) error {
		<-ctx.Done()
		return rmqerrors.ErrRequestTimeout
	}
	p := newPublisher(t, b, producer.WithInterceptor(slow))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := p.Publish(ctx, outbox.Record{ID: 1, Message: outbox.Message{Topic: topic, Key: "k"}})
	if err == nil || errors.Is(err, relay.ErrUnavailable) {
		t.Errorf("send cut off by the deadline: Publish = %v, want an error that is not ErrUnavailable", err)
	}
}

// A name server that does not answer: the route cannot be had, Publish says unavailable.
func TestNoNameServerIsUnavailable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	p, err := rocketmq.New(rocketmq.Config{NameServers: []string{addr}, Group: rmqtest.Name(t, "P"), SendTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Publish(ctx, outbox.Record{ID: 1, Message: outbox.Message{Topic: "t", Key: "k"}})
	if !errors.Is(err, relay.ErrUnavailable) {
		t.Fatalf("Publish with no name server = %v, want ErrUnavailable", err)
	}
}
