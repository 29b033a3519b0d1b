package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// warnEvery is the least time between two Warn lines of one kind: a failing broker or database makes every
// batch fail, and one line per batch (let alone per row: 467,000 lines in a minute once) drowns the log.
const warnEvery = time.Second

// sampleKeys is how many business keys a failure summary names.
const sampleKeys = 3

// warnLimiter lets one Warn line per kind through per warnEvery and counts the ones it held back.
type warnLimiter struct {
	mu      sync.Mutex
	last    map[string]time.Time
	dropped map[string]int
}

// allow reports whether a line of kind may be written now, and how many lines of that kind were held back
// since the last one written.
func (l *warnLimiter) allow(kind string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.dropped = map[string]time.Time{}, map[string]int{}
	}
	if t, ok := l.last[kind]; ok && now.Sub(t) < warnEvery {
		l.dropped[kind]++
		return false, 0
	}
	n := l.dropped[kind]
	l.last[kind], l.dropped[kind] = now, 0
	return true, n
}

// warn writes a Warn line unless a line of the same kind was written within warnEvery; the line says how many
// were left out before it.
func (r *Relay) warn(ctx context.Context, kind, msg string, args ...any) {
	if !r.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	ok, dropped := r.warns.allow(kind, time.Now())
	if !ok {
		return
	}
	if dropped > 0 {
		args = append(args, "suppressed_lines", dropped)
	}
	r.log.WarnContext(ctx, msg, args...)
}

// failures gathers a batch's failed publishes for one summary line.
type failures struct {
	count, dead int
	first       error
	firstTopic  string
	keys        []string
}

func (f *failures) add(topic, key string, err error, dead bool) {
	if f.count == 0 {
		f.first, f.firstTopic = err, topic
	}
	f.count++
	if dead {
		f.dead++
	}
	if len(f.keys) < sampleKeys {
		f.keys = append(f.keys, key)
	}
}

// log writes the batch's summary: publishes that failed and will be retried, and rows moved to the dead-letter
// table.
func (f *failures) log(ctx context.Context, r *Relay, worker int) {
	if f.count == 0 {
		return
	}
	r.warn(ctx, "publish", "relay: publishes failed", "worker", worker, "failed", f.count, "dead_lettered", f.dead,
		"first_topic", f.firstTopic, "first_error", f.first, "sample_keys", f.keys)
}
