package inbox

import (
	"math/rand/v2"
	"time"
)

// backoff is the wait before retry number n (0-based): RetryBackoff doubled n times, capped at
// RetryBackoffMax, drawn uniformly from its upper half. Deliveries of one key that deadlocked together then
// retry at different moments instead of colliding again.
func (i *Inbox) backoff(n int) time.Duration {
	d := i.cfg.RetryBackoff
	for ; n > 0 && d < i.cfg.RetryBackoffMax; n-- {
		d *= 2
	}
	d = min(d, i.cfg.RetryBackoffMax)
	half := d / 2
	return half + rand.N(d-half+1)
}
