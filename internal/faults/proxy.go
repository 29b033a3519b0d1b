package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards TCP connections from a listener on 127.0.0.1 to a target and cuts them on demand: a cut
// resets both sides (RST, SO_LINGER 0), as a dead peer, a restarted firewall or a lost route would. Clients
// reach the target through Addr. A Proxy is safe for concurrent use.
type Proxy struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	conns   map[*link]struct{}
	refuse  bool
	pattern []byte // lower case: cut a connection whose client sends this (see CutOn)
	closed  bool

	cuts atomic.Int64
	wg   sync.WaitGroup
}

// link is one proxied connection: the client's side and the target's.
type link struct {
	client, server net.Conn
	once           sync.Once
}

// cut resets both sides.
func (l *link) cut() {
	l.once.Do(func() {
		for _, c := range []net.Conn{l.client, l.server} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
	})
}

// NewProxy listens on a free port of 127.0.0.1 and forwards every connection to target (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faults: proxy listen: %w", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[*link]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cuts is how many connections the proxy has cut so far.
func (p *Proxy) Cuts() int64 { return p.cuts.Load() }

// Conns is how many connections are open through the proxy.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Refuse makes the proxy reset every new connection at once (true) or forward them again (false): the target
// looks down while connections are refused.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// CutAll resets every open connection and returns how many it cut.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	ls := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		p.cutLink(l)
	}
	return len(ls)
}

// CutOne resets one open connection chosen at random and reports whether there was one.
func (p *Proxy) CutOne() bool {
	p.mu.Lock()
	var ls []*link
	for l := range p.conns {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	if len(ls) == 0 {
		return false
	}
	p.cutLink(ls[rand.IntN(len(ls))])
	return true
}

// CutOn arms the proxy: the first client that sends pattern (a statement's text, say "commit") has its
// connection reset before those bytes reach the target. Matching ignores ASCII case and finds a pattern split
// across reads. The pattern is disarmed after one cut; "" disarms it.
func (p *Proxy) CutOn(pattern string) {
	p.mu.Lock()
	p.pattern = bytes.ToLower([]byte(pattern))
	p.mu.Unlock()
}

// CutEvery resets one connection at a random interval in [min, max) until ctx ends.
func (p *Proxy) CutEvery(ctx context.Context, lo, hi time.Duration) {
	for {
		d := lo
		if hi > lo {
			d += rand.N(hi - lo)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		p.CutOne()
	}
}

// Close stops listening and cuts every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) cutLink(l *link) {
	p.mu.Lock()
	_, open := p.conns[l]
	delete(p.conns, l)
	p.mu.Unlock()
	if open {
		p.cuts.Add(1)
	}
	l.cut()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		refuse, closed := p.refuse, p.closed
		p.mu.Unlock()
		if refuse || closed {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			continue
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		if tc, ok := client.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = client.Close()
		return
	}
	l := &link{client: client, server: server}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.cut()
		return
	}
	p.conns[l] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.pipe(l, server, client, true); done <- struct{}{} }()
	go func() { p.pipe(l, client, server, false); done <- struct{}{} }()
	<-done
	// One direction ended (EOF or error): end the other and forget the link.
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
	_ = client.Close()
	_ = server.Close()
	<-done
}

// pipe copies src to dst; for the client's direction it watches for the armed pattern.
func (p *Proxy) pipe(l *link, dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 32<<10)
	var tail []byte // the end of the previous read, to match a pattern split across reads
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient && p.match(&tail, buf[:n]) {
				p.cutLink(l)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// match reports whether the armed pattern occurs in tail+b (lower-cased), and disarms it when it does; tail
// keeps the last len(pattern)-1 bytes for the next read.
func (p *Proxy) match(tail *[]byte, b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pattern) == 0 {
		return false
	}
	data := make([]byte, 0, len(*tail)+len(b))
	data = append(append(data, *tail...), bytes.ToLower(b)...)
	if bytes.Contains(data, p.pattern) {
		p.pattern, *tail = nil, nil
		return true
	}
	if k := len(p.pattern) - 1; len(data) > k {
		data = data[len(data)-k:]
	}
	*tail = data
	return false
}
