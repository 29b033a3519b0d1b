package fleet

import "time"

// peer is what a relay knows of a live relay of the fleet, itself included: how many databases it holds and
// may hold.
type peer struct {
	id      string
	held    int
	maxHeld int // 0: no cap
}

// room reports whether p may take another database.
func (p peer) room() bool { return p.maxHeld == 0 || p.held < p.maxHeld }

// fairShare is what each of n relays holds when m databases are shared evenly: lo or hi (hi = lo+1 unless n
// divides m).
func fairShare(m, n int) (lo, hi int) {
	if n < 1 {
		n = 1
	}
	lo = m / n
	hi = lo
	if m%n != 0 {
		hi++
	}
	return lo, hi
}

// shouldTake reports whether self takes a free database, knowing the other live relays: while it holds less than
// the low end of its fair share of the m usable databases among all the live relays; up to the high end while no
// other relay with room is below the low end (a database given up to even out the fleet goes to the relay that
// holds the fewest, not to the first that looks); or, once the database has been free for grace, whatever it
// holds, below its cap (a dead relay still counts as live until its heartbeats age out, and its databases should
// not wait for that). freeFor is how long the database has been seen free (0: just now).
func shouldTake(self peer, others []peer, m int, freeFor, grace time.Duration) bool {
	if !self.room() {
		return false
	}
	lo, hi := fairShare(m, 1+len(others))
	switch {
	case self.held < lo:
		return true
	case self.held < hi:
		for _, p := range others {
			if p.room() && p.held < lo {
				return false
			}
		}
		return true
	}
	return freeFor >= grace
}

// toRelease is how many databases self gives up to even out the fleet: only the relay that holds the most
// (ties: the greatest id) gives any up, and only when some other live relay with room holds at least two
// fewer; it then gives up half the difference. A difference of one is the even share itself (lo and hi), so
// a balanced fleet never moves a database; one relay moving at a time, by half the gap, cannot overshoot.
func toRelease(self peer, others []peer) int {
	least := -1
	for _, p := range others {
		if p.held > self.held || (p.held == self.held && p.id > self.id) {
			return 0 // another relay holds more, or as many with a greater id: it moves first
		}
		if p.room() && (least < 0 || p.held < least) {
			least = p.held
		}
	}
	if least < 0 || self.held-least < 2 {
		return 0
	}
	return (self.held - least) / 2
}
