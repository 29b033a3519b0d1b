package bus

import (
	"fmt"
	"testing"
)

func TestFaultsAreDisjointAndNearTheirRates(t *testing.T) {
	f := Faults{LostAckPercent: 5, SlowPercent: 2, ResendPercent: 5}
	counts := map[Fault]int{}
	const n = 20000
	for i := range n {
		key := fmt.Sprintf("%016x/created", i*7919)
		first := f.For(key)
		counts[first]++
		if again := f.For(key); again != first {
			t.Fatalf("For(%q) is not deterministic: %v, then %v", key, first, again)
		}
	}
	for fault, pct := range map[Fault]int{LostAck: 5, Slow: 2, Resend: 5} {
		if got := float64(counts[fault]) * 100 / n; got < float64(pct)*0.8 || got > float64(pct)*1.2 {
			t.Errorf("%v: %.2f%% of keys, want about %d%%", fault, got, pct)
		}
	}
	if (Faults{}).For("x") != NoFault {
		t.Error("the zero Faults injects something")
	}
	for _, bad := range []Faults{{LostAckPercent: -1}, {SlowPercent: 101}, {LostAckPercent: 60, ResendPercent: 50}} {
		if bad.Validate() == nil {
			t.Errorf("%+v: Validate accepted it", bad)
		}
	}
}
