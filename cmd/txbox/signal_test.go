package main_test

import (
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// silentNameServer accepts connections and reads what clients send without ever answering; requested is closed
// when the first bytes arrive (a client asked for a topic's route).
func silentNameServer(t *testing.T) (addr string, requested <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	req := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				b := make([]byte, 1)
				if n, _ := c.Read(b); n > 0 {
					once.Do(func() { close(req) })
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), req
}

// The first SIGTERM lets the batch in flight finish; a second one ends the relay at once, killed by the signal.
// The batch here waits on a name server that never answers, so only the second signal can end it early, and
// since it never committed, every row is still in the outbox.
func TestRelaySecondSignalStopsAtOnce(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		enqueue(t, db, outbox.Message{Topic: "t", Key: "a"}, outbox.Message{Topic: "t", Key: "b"})
		addr, requested := silentNameServer(t)
		p := start(t, db, "relay", "--namesrv", addr, "--group", "G_signal", "--workers", "1", "--send-timeout", "1m")
		select {
		case <-requested: // the batch's first publish is waiting for the topic's route
		case <-p.done:
			t.Fatalf("relay exited with %d before publishing:\n%s", p.code, p.log())
		case <-time.After(time.Minute):
			t.Fatalf("the relay never asked the name server for a route:\n%s", p.log())
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// The first signal restores the default handling asynchronously: repeat the second until it lands.
		deadline := time.After(20 * time.Second)
	loop:
		for {
			select {
			case <-p.done:
				break loop
			case <-deadline:
				t.Fatalf("relay still running 20s after repeated second signals:\n%s", p.log())
			case <-time.After(50 * time.Millisecond):
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Fatalf("relay ended with status %v, want killed by the second SIGTERM:\n%s", p.cmd.ProcessState, p.log())
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox"); n != 2 {
			t.Fatalf("%d rows in the outbox after the kill, want both (the batch never committed)", n)
		}
	})
}
