package orderservice

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/bus"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/outbox"
)

// Order is an order as the API shows it.
type Order struct {
	ID          string `json:"id"`
	AmountCents int64  `json:"amount_cents"`
	Status      string `json:"status"` // "pending", then "paid"
	PaymentID   string `json:"payment_id,omitempty"`
}

// CreateRequest is the body of POST /orders. ID is optional: a client that sends its own id can retry the
// request safely (the second call finds the order and enqueues nothing).
type CreateRequest struct {
	ID          string `json:"id,omitempty"`
	AmountCents int64  `json:"amount_cents"`
}

var validID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Handler is the service's HTTP API:
//
//	POST /orders       {"amount_cents": 1250}  → 201 {"id": "…", "status": "pending", …} (200 if the id existed)
//	GET  /orders/{id}  → the order
//	GET  /stats        → message counts (JSON)
//	GET  /healthz      → 200
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", s.handleCreate)
	mux.HandleFunc("GET /orders/{id}", s.handleGet)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

func (s *Service) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return
	}
	if req.ID == "" {
		req.ID = randomHex(8)
	}
	if !validID.MatchString(req.ID) {
		writeError(w, http.StatusBadRequest, errors.New("id: 1 to 64 characters of A-Z a-z 0-9 _ -"))
		return
	}
	if req.AmountCents <= 0 {
		writeError(w, http.StatusBadRequest, errors.New("amount_cents must be positive"))
		return
	}
	o, created, err := s.CreateOrder(r.Context(), req)
	if err != nil {
		s.Log.Error("create order failed", "order", req.ID, "err", err)
		writeError(w, http.StatusInternalServerError, errors.New("could not create the order"))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, o)
}

// CreateOrder writes the order and its order-created message in one transaction: both commit or neither does,
// so no order goes unannounced and no message announces an order that was rolled back. created is false when
// an order with this id already existed (nothing is written then).
func (s *Service) CreateOrder(ctx context.Context, req CreateRequest) (o Order, created bool, err error) {
	payload, err := json.Marshal(bus.OrderCreated{OrderID: req.ID, AmountCents: req.AmountCents})
	if err != nil {
		return Order{}, false, err
	}
	tx, err := s.SQL.BeginTxx(ctx, nil)
	if err != nil {
		return Order{}, false, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	_, err = tx.ExecContext(ctx, s.SQL.Rebind(`INSERT INTO orders (id, amount_cents, status, created_us) VALUES (?, ?, 'pending', ?)`),
		req.ID, req.AmountCents, time.Now().UnixMicro())
	if errors.Is(s.Cfg.Dialect.InterpretError(err), dialect.ErrDuplicateKey) {
		_ = tx.Rollback()
		o, err := s.GetOrder(ctx, req.ID)
		return o, false, err
	}
	if err != nil {
		return Order{}, false, fmt.Errorf("insert order: %w", err)
	}
	err = s.Outbox.Enqueue(ctx, tx, outbox.Message{
		Topic:   s.Cfg.OrderCreatedTopic,
		Key:     bus.OrderCreatedKey(req.ID),
		Payload: payload,
	})
	if err != nil {
		return Order{}, false, fmt.Errorf("enqueue order-created: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return Order{}, false, fmt.Errorf("commit order: %w", err)
	}
	return Order{ID: req.ID, AmountCents: req.AmountCents, Status: "pending"}, true, nil
}

// errNoOrder is a payment for an order this service does not know. The handler fails, so the message is
// retried (and parked eventually) rather than acknowledged and forgotten.
var errNoOrder = errors.New("payment for an unknown order")

// markPaid handles payment-completed inside the inbox's transaction. The status change is idempotent by
// itself; payment_events is not, and stays at 1 only because the inbox runs this once per key.
func (s *Service) markPaid(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
	var p bus.PaymentCompleted
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		return fmt.Errorf("payment-completed %s: %w", m.MessageKey, err)
	}
	res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE orders SET status = 'paid', paid_us = COALESCE(paid_us, ?),
		payment_id = ?, payment_events = payment_events + 1 WHERE id = ?`), time.Now().UnixMicro(), p.PaymentID, p.OrderID)
	if err != nil {
		return fmt.Errorf("mark order %s paid: %w", p.OrderID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("mark order %s paid: %w", p.OrderID, errNoOrder)
	}
	return nil
}

// GetOrder reads one order.
func (s *Service) GetOrder(ctx context.Context, id string) (Order, error) {
	var o Order
	var pay *string
	err := s.SQL.QueryRowxContext(ctx, s.SQL.Rebind(`SELECT id, amount_cents, status, payment_id FROM orders WHERE id = ?`), id).
		Scan(&o.ID, &o.AmountCents, &o.Status, &pay)
	if pay != nil {
		o.PaymentID = *pay
	}
	return o, err
}

func (s *Service) handleGet(w http.ResponseWriter, r *http.Request) {
	o, err := s.GetOrder(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		writeError(w, http.StatusNotFound, errors.New("no such order"))
	case err != nil:
		writeError(w, http.StatusInternalServerError, errors.New("could not read the order"))
	default:
		writeJSON(w, http.StatusOK, o)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}
