package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// ChargeRequest is the body of POST /charges.
type ChargeRequest struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
}

// ChargeResponse is the answer to POST /charges.
type ChargeResponse struct {
	ID string `json:"id"`
	// Replayed tells that the Idempotency-Key was seen before: this is the first charge again, not a new one.
	Replayed bool `json:"replayed"`
}

// Server is a running stand-in gateway.
type Server struct {
	ln  net.Listener
	srv *http.Server

	mu       sync.Mutex
	byKey    map[string]charge // by Idempotency-Key
	perOrder map[string]int    // charges per order
	calls    int
	charges  int
	replays  int
}

type charge struct {
	req ChargeRequest
	id  string
}

// Start serves a gateway on addr ("127.0.0.1:0" picks a free port) until Close.
func Start(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen: %w", err)
	}
	s := &Server{ln: ln, byKey: map[string]charge{}, perOrder: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /charges", s.charge)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the gateway's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) charge(w http.ResponseWriter, r *http.Request) {
	var req ChargeRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.OrderID == "" {
		http.Error(w, "bad charge request", http.StatusBadRequest)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	s.mu.Lock()
	s.calls++
	c, seen := s.byKey[key]
	switch {
	case seen && key != "" && c.req != req:
		s.mu.Unlock()
		http.Error(w, "Idempotency-Key reused for a different request", http.StatusConflict)
		return
	case seen && key != "":
		s.replays++
	default:
		s.charges++
		s.perOrder[req.OrderID]++
		c = charge{req: req, id: fmt.Sprintf("ch_%06d", s.charges)}
		if key != "" {
			s.byKey[key] = c
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(ChargeResponse{ID: c.id, Replayed: seen && key != ""})
}

// Stats is what the gateway saw.
type Stats struct {
	Calls    int            // POST /charges answered
	Charges  int            // charges made
	Replays  int            // calls answered with an earlier charge (a repeated Idempotency-Key)
	PerOrder map[string]int // charges per order
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	per := make(map[string]int, len(s.perOrder))
	for k, v := range s.perOrder {
		per[k] = v
	}
	return Stats{Calls: s.calls, Charges: s.charges, Replays: s.replays, PerOrder: per}
}

// Client calls a gateway.
type Client struct {
	URL  string
	HTTP *http.Client // default: a client with a 10s timeout
}

// ErrRefused is returned by Charge for a request the gateway refused (4xx): retrying it cannot help.
var ErrRefused = errors.New("gateway: charge refused")

// Charge charges amount for order under idempotencyKey ("" sends none: every call is a new charge) and returns
// the charge id.
func (c *Client) Charge(ctx context.Context, idempotencyKey, orderID string, amountCents int64) (ChargeResponse, error) {
	body, _ := json.Marshal(ChargeRequest{OrderID: orderID, AmountCents: amountCents})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/charges", bytes.NewReader(body))
	if err != nil {
		return ChargeResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return ChargeResponse{}, fmt.Errorf("gateway: charge order %s: %w", orderID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return ChargeResponse{}, fmt.Errorf("%w: %s: %s", ErrRefused, resp.Status, bytes.TrimSpace(msg))
	}
	if resp.StatusCode != http.StatusCreated {
		return ChargeResponse{}, fmt.Errorf("gateway: charge order %s: %s", orderID, resp.Status)
	}
	var out ChargeResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return ChargeResponse{}, fmt.Errorf("gateway: charge order %s: decode: %w", orderID, err)
	}
	return out, nil
}

var defaultHTTP = &http.Client{Timeout: 10 * time.Second}
