package relay

import (
	"testing"
	"time"
)

// The wait after an empty pass: MinPollInterval while messages flow, with or without a listener (producers
// notify at most once per outbox.Config.NotifyInterval, so a listening relay must still poll for the messages
// between notifications); once quiet, a listening relay waits MaxPollInterval at once, a polling one doubles
// its wait up to MaxPollInterval.
func TestIdleWait(t *testing.T) {
	cfg := Config{MinPollInterval: 10 * time.Millisecond, MaxPollInterval: time.Second}
	for _, c := range []struct {
		name      string
		listening bool
		activeAgo time.Duration
		prev      time.Duration
		want      time.Duration
	}{
		{"listening, flowing", true, 100 * time.Millisecond, 0, cfg.MinPollInterval},
		{"listening, flowing, after a wait", true, 100 * time.Millisecond, cfg.MinPollInterval, cfg.MinPollInterval},
		{"listening, quiet", true, time.Hour, 0, cfg.MaxPollInterval},
		{"polling, flowing", false, 100 * time.Millisecond, 40 * time.Millisecond, cfg.MinPollInterval},
		{"polling, quiet, first wait", false, time.Hour, 0, cfg.MinPollInterval},
		{"polling, quiet, doubling", false, time.Hour, 40 * time.Millisecond, 80 * time.Millisecond},
		{"polling, quiet, capped", false, time.Hour, 800 * time.Millisecond, cfg.MaxPollInterval},
	} {
		r := &Relay{cfg: cfg}
		if c.listening {
			r.listening.Store(1)
		}
		r.active.Store(time.Now().Add(-c.activeAgo).UnixNano())
		if got := r.idleWait(c.prev); got != c.want {
			t.Errorf("%s: idleWait(%s) = %s, want %s", c.name, c.prev, got, c.want)
		}
	}
}
