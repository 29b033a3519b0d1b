package rocketmq_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay/rocketmq"
)

// envTLSChild marks the process TestTLS starts.
const envTLSChild = "TXBOX_TEST_TLS_CHILD"

// TestTLS runs TestTLSChild in a process of its own: rocketmq-client-go's TLS switch is process-global, and
// turning it on while other tests' clients dial would be a data race inside the client (and would make them dial
// with TLS).
func TestTLS(t *testing.T) {
	rmqtest.RunInChild(t, envTLSChild, "TestTLSChild")
}

func TestTLSChild(t *testing.T) {
	rmqtest.OnlyInChild(t, envTLSChild)
	// Order matters: the switch is written only while no client dials.
	t.Run("SettingsDoNotMix", testTLSSettingsDoNotMix)
	t.Run("OnTheWire", testTLSOnTheWire)
	t.Run("PublishesToTheBroker", testTLSPublishesToTheBroker)
}

// rocketmq-client-go's TLS switch is one process-global setting that every client reads when it dials: a client
// asking for the other setting while one runs is refused, and allowed once that one is shut down.
func testTLSSettingsDoNotMix(t *testing.T) {
	ns := []string{"127.0.0.1:9"}
	a, err := rocketmq.New(rocketmq.Config{NameServers: ns, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rocketmq.New(rocketmq.Config{NameServers: ns}); !errors.Is(err, rocketmq.ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "TLS") {
		t.Fatalf("a plain publisher beside a TLS one: %v, want ErrInvalidConfig naming TLS", err)
	}
	b, err := rocketmq.New(rocketmq.Config{NameServers: ns, TLS: true})
	if err != nil {
		t.Fatalf("a second TLS publisher: %v", err)
	}
	_ = a.Close()
	_ = b.Close()
	c, err := rocketmq.New(rocketmq.Config{NameServers: ns})
	if err != nil {
		t.Fatalf("a plain publisher after the TLS ones closed: %v", err)
	}
	_ = c.Close()
}

// tlsHandshake is the first byte of a TLS record carrying a handshake (the ClientHello); the Remoting protocol
// starts with a 4-byte length instead, and every other test of the package speaks it.
const tlsHandshake = 0x16

// Config.TLS reaches the wire: the client opens its connections with a TLS ClientHello.
func testTLSOnTheWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		if _, err := c.Read(b); err == nil {
			got <- b[0]
		}
	}()
	p, err := rocketmq.New(rocketmq.Config{NameServers: []string{ln.Addr().String()}, TLS: true,
		SendTimeout: 300 * time.Millisecond, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = p.Publish(ctx, outbox.Record{ID: 1, Message: outbox.Message{Topic: "t", Key: "k", Payload: []byte("x")}})
	select {
	case b := <-got:
		if b != tlsHandshake {
			t.Fatalf("the client's first byte is %#x, want a TLS handshake record (%#x)", b, tlsHandshake)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client never talked to the name server")
	}
}

// Over TLS, the real broker (which takes TLS and plain connections on the same ports: its default
// "permissive" mode, with a self-signed certificate) confirms publishes.
func testTLSPublishesToTheBroker(t *testing.T) {
	b := rmqtest.Get(t)
	topic := b.Topic(t, 1)
	p, err := rocketmq.New(rocketmq.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "P"), TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 3 {
		r := outbox.Record{ID: int64(i + 1), Message: outbox.Message{Topic: topic, Key: fmt.Sprint("over-tls-", i), Payload: []byte("x")}}
		if err := p.Publish(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCredentialsValidation(t *testing.T) {
	_, err := rocketmq.New(rocketmq.Config{NameServers: []string{"127.0.0.1:9"},
		Credentials: rocketmq.Credentials{SecurityToken: "token"}})
	if !errors.Is(err, rocketmq.ErrInvalidConfig) || !strings.Contains(err.Error(), "SecurityToken") ||
		strings.Contains(err.Error(), "token\"") {
		t.Fatalf("a security token without keys: %v, want ErrInvalidConfig naming SecurityToken", err)
	}
}
