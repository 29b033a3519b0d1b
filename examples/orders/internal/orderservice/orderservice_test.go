package orderservice_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/examples/orders/internal/orderservice"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
)

// The client's package-level goroutines start when it loads (the service imports it), even without a broker.
func TestMain(m *testing.M) { testdb.Main(m, rmqtest.LeakOptions()...) }

// TestCreateOrder checks the HTTP API's promises without a broker (Run is not called): an order and its
// order-created message are written together, a client retrying with its own id gets the same order and no
// second message, and bad input is refused with nothing written.
func TestCreateOrder(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		svc, err := orderservice.New(ctx, orderservice.Config{
			Dialect: db.Dialect, DSN: db.DSN, NameServers: []string{"127.0.0.1:9876"}, Listen: "127.0.0.1:0",
		})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		h := svc.Handler()
		post := func(body string) (int, orderservice.Order) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodPost, "/orders", strings.NewReader(body)))
			var o orderservice.Order
			_ = json.Unmarshal(rec.Body.Bytes(), &o)
			return rec.Code, o
		}
		count := func(q string) int {
			var n int
			if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}

		code, o := post(`{"id": "order-1", "amount_cents": 1250}`)
		if code != http.StatusCreated || o.ID != "order-1" || o.Status != "pending" {
			t.Fatalf("first POST: %d %+v", code, o)
		}
		code, o = post(`{"id": "order-1", "amount_cents": 1250}`)
		if code != http.StatusOK || o.ID != "order-1" {
			t.Fatalf("retried POST: %d %+v, want 200 and the same order", code, o)
		}
		code, o = post(`{"amount_cents": 99}`)
		if code != http.StatusCreated || o.ID == "" {
			t.Fatalf("POST without an id: %d %+v", code, o)
		}
		for _, bad := range []string{`{"amount_cents": 0}`, `{"id": "a/b", "amount_cents": 1}`, `not json`} {
			if code, _ := post(bad); code != http.StatusBadRequest {
				t.Errorf("POST %s: %d, want 400", bad, code)
			}
		}
		if n := count(`SELECT COUNT(*) FROM orders`); n != 2 {
			t.Errorf("%d orders, want 2", n)
		}
		if n := count(`SELECT COUNT(*) FROM txbox_outbox`); n != 2 {
			t.Errorf("%d outbox rows, want 2 (one per order, none for the retry)", n)
		}

		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/orders/order-1", nil))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"status":"pending"`) {
			t.Errorf("GET /orders/order-1: %d %s", rec.Code, rec.Body)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/orders/nope", nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET /orders/nope: %d, want 404", rec.Code)
		}
	})
}
