package gateway_test

import (
	"context"
	"errors"
	"testing"

	"github.com/txbox/txbox/examples/orders/internal/gateway"
)

// The gateway honours Idempotency-Key: the same key returns the first charge, a different request under it is
// refused, and calls without a key always charge.
func TestIdempotencyKey(t *testing.T) {
	s, err := gateway.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &gateway.Client{URL: s.URL()}
	ctx := context.Background()
	first, err := c.Charge(ctx, "o-1/payment", "o-1", 1250)
	if err != nil || first.Replayed {
		t.Fatalf("first charge = %+v, %v", first, err)
	}
	again, err := c.Charge(ctx, "o-1/payment", "o-1", 1250)
	if err != nil || !again.Replayed || again.ID != first.ID {
		t.Fatalf("repeated key = %+v, %v; want the first charge %s replayed", again, err, first.ID)
	}
	if _, err := c.Charge(ctx, "o-1/payment", "o-1", 999); !errors.Is(err, gateway.ErrRefused) {
		t.Errorf("same key, other amount: %v, want ErrRefused", err)
	}
	for range 2 {
		if _, err := c.Charge(ctx, "", "o-2", 100); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Calls != 5 || st.Charges != 3 || st.Replays != 1 || st.PerOrder["o-1"] != 1 || st.PerOrder["o-2"] != 2 {
		t.Errorf("stats %+v, want 5 calls, 3 charges (o-1 once, o-2 twice without a key), 1 replay", st)
	}
}
