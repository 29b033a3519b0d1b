package fleet

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestFairShare(t *testing.T) {
	for _, c := range []struct{ m, n, lo, hi int }{
		{12, 3, 4, 4}, {12, 5, 2, 3}, {12, 1, 12, 12}, {1, 3, 0, 1}, {0, 3, 0, 0}, {12, 0, 12, 12}, {13, 4, 3, 4},
	} {
		if lo, hi := fairShare(c.m, c.n); lo != c.lo || hi != c.hi {
			t.Errorf("fairShare(%d, %d) = %d, %d; want %d, %d", c.m, c.n, lo, hi, c.lo, c.hi)
		}
	}
}

func TestShouldTake(t *testing.T) {
	const grace = 2 * time.Second
	p := func(held, maxHeld int) peer { return peer{held: held, maxHeld: maxHeld} }
	two := func(a, b int) []peer { return []peer{p(a, 0), p(b, 0)} }
	for _, c := range []struct {
		self    peer
		others  []peer
		m       int
		freeFor time.Duration
		want    bool
	}{
		{p(3, 0), two(4, 4), 12, 0, true},               // below the share
		{p(4, 0), two(4, 3), 12, 0, false},              // at the share
		{p(4, 0), two(4, 3), 12, grace - 1, false},      // at the share, free for less than the grace
		{p(4, 0), two(4, 3), 12, grace, true},           // free too long: taken beyond the share
		{p(2, 2), two(0, 0), 12, 0, false},              // at the cap
		{p(2, 2), two(0, 0), 12, time.Hour, false},      // at the cap, whatever the grace
		{p(1, 2), two(4, 4), 12, 0, true},               // below the cap and the share
		{p(0, 0), nil, 0, 0, false},                     // nothing usable: share 0
		{p(2, 0), two(3, 3), 8, 0, true},                // 8 over 3: 2 or 3; nobody below 2
		{p(2, 0), two(3, 1), 8, 0, false},               // ... but one relay holds 1: it gets the database
		{p(2, 0), []peer{p(3, 0), p(1, 1)}, 8, 0, true}, // ... unless it is at its cap
		{p(1, 0), two(3, 0), 8, 0, true},                // below the low end itself
	} {
		if got := shouldTake(c.self, c.others, c.m, c.freeFor, grace); got != c.want {
			t.Errorf("shouldTake(%+v, %+v, m %d, free for %s) = %v, want %v", c.self, c.others, c.m, c.freeFor, got, c.want)
		}
	}
}

func TestToRelease(t *testing.T) {
	p := func(id string, held, maxHeld int) peer { return peer{id: id, held: held, maxHeld: maxHeld} }
	for _, c := range []struct {
		self   peer
		others []peer
		want   int
	}{
		{p("a", 12, 0), []peer{p("b", 0, 0), p("c", 0, 0)}, 6},
		{p("a", 4, 0), []peer{p("b", 4, 0), p("c", 4, 0)}, 0}, // balanced
		{p("a", 5, 0), []peer{p("b", 4, 0), p("c", 3, 0)}, 1},
		{p("a", 5, 0), []peer{p("b", 4, 0), p("c", 4, 0)}, 0}, // a difference of one is even
		{p("b", 5, 0), []peer{p("a", 5, 0), p("c", 3, 0)}, 1}, // tie: the greatest id moves
		{p("a", 5, 0), []peer{p("b", 5, 0), p("c", 3, 0)}, 0}, // ... not the other
		{p("a", 3, 0), []peer{p("b", 6, 0), p("c", 3, 0)}, 0}, // not the top holder
		{p("a", 6, 0), []peer{p("b", 2, 2), p("c", 5, 0)}, 0}, // the one that holds fewer is at its cap
		{p("a", 6, 0), []peer{}, 0},
	} {
		if got := toRelease(c.self, c.others); got != c.want {
			t.Errorf("toRelease(%+v, %+v) = %d, want %d", c.self, c.others, got, c.want)
		}
	}
}

// Whatever the start, relays that follow shouldTake and toRelease (with fresh knowledge of each other) end with
// every database held, each relay within one of the others (or at its cap), and stay there: no database
// moves once the fleet is even.
func TestShareConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 500 {
		n := 1 + rng.IntN(6)
		m := rng.IntN(30)
		relays := make([]peer, n)
		for i := range relays {
			relays[i].id = fmt.Sprintf("r%d", i)
			if rng.IntN(4) == 0 {
				relays[i].maxHeld = 1 + rng.IntN(5)
			}
		}
		capacity := 0
		for _, r := range relays {
			if r.maxHeld == 0 {
				capacity = m
				break
			}
			capacity += r.maxHeld
		}
		// Start lopsided: the first relays take what they can.
		free := m
		for i := range relays {
			take := free
			if relays[i].maxHeld > 0 {
				take = min(take, relays[i].maxHeld)
			}
			take = min(take, rng.IntN(m+1))
			relays[i].held += take
			free -= take
		}
		moves, stable := 0, 0
		for round := 0; round < 200 && stable < 3; round++ {
			changed := false
			for _, i := range rng.Perm(n) {
				others := slices.Delete(slices.Clone(relays), i, i+1)
				if k := toRelease(relays[i], others); k > 0 {
					relays[i].held -= k
					free += k
					moves += k
					changed = true
				}
			}
			for _, i := range rng.Perm(n) {
				// A free database found by relay i: within its share, or after the grace.
				others := slices.Delete(slices.Clone(relays), i, i+1)
				for free > 0 && shouldTake(relays[i], others, m, 0, time.Second) {
					relays[i].held++
					free--
					changed = true
				}
			}
			if free > 0 { // the grace passes for what nobody took within its share
				for _, i := range rng.Perm(n) {
					others := slices.Delete(slices.Clone(relays), i, i+1)
					for free > 0 && shouldTake(relays[i], others, m, time.Second, time.Second) {
						relays[i].held++
						free--
						changed = true
					}
				}
			}
			if changed {
				stable = 0
			} else {
				stable++
			}
		}
		if stable < 3 {
			t.Fatalf("trial %d (m %d): no steady state after 200 rounds: %+v", trial, m, relays)
		}
		if want := min(m, capacity); m-free != want {
			t.Errorf("trial %d: %d of %d databases held, want %d: %+v", trial, m-free, m, want, relays)
		}
		for _, a := range relays {
			for _, b := range relays {
				if a.held-b.held >= 2 && b.room() {
					t.Errorf("trial %d (m %d): uneven at rest: %+v", trial, m, relays)
				}
			}
		}
		if moves > 2*m+2 {
			t.Errorf("trial %d: %d databases given up to even out %d: too many moves", trial, moves, m)
		}
	}
}
