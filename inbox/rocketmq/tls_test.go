package rocketmq_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/internal/rmqtest"
)

// envTLSChild marks the process TestTLS starts.
const envTLSChild = "TXBOX_TEST_TLS_CHILD"

// TestTLS runs TestTLSChild in a process of its own: rocketmq-client-go's TLS switch is process-global, and
// turning it on while other tests' clients dial would be a data race inside the client.
func TestTLS(t *testing.T) {
	rmqtest.RunInChild(t, envTLSChild, "TestTLSChild")
}

// Config.TLS reaches the wire: starting, the consumer opens its name-server connection with a TLS ClientHello (a
// TLS record starts with 0x16; every other test of the package speaks the Remoting protocol in the clear).
func TestTLSChild(t *testing.T) {
	rmqtest.OnlyInChild(t, envTLSChild)
	ib, err := inbox.New(sqlx.NewDb(nil, "pgx"), inbox.Config{Dialect: dialect.Postgres, Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
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
	c, err := rocketmq.New(ib, rocketmq.Config{NameServers: []string{ln.Addr().String()}, Group: "g", Topic: "t",
		TLS: true}, func(context.Context, *sqlx.Tx, *rocketmq.Message) error { return nil })
	if err == nil { // a name server that answers nothing gives no route, and Start fails
		_ = c.Close()
	}
	select {
	case b := <-got:
		if b != 0x16 {
			t.Fatalf("the consumer's first byte is %#x, want a TLS handshake record", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the consumer never talked to the name server")
	}
}
