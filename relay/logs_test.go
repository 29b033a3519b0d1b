package relay_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// lineCounter is a slog.Handler counting records by message and level.
type lineCounter struct {
	mu    sync.Mutex
	msgs  map[string]int
	level map[slog.Level]int
}

func (l *lineCounter) logger() *slog.Logger { return slog.New(l) }

func (l *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *lineCounter) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lineCounter) WithGroup(string) slog.Handler            { return l }
func (l *lineCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.msgs == nil {
		l.msgs, l.level = map[string]int{}, map[slog.Level]int{}
	}
	l.msgs[r.Message]++
	l.level[r.Level]++
	return nil
}

func (l *lineCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.msgs[msg]
}

func (l *lineCounter) atLevel(lv slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.level[lv]
}

// Item 7 of issue 11: a publisher that fails every row used to log one Warn line per row and attempt (467,000
// lines in 60s for 100k rows). Failures are now summarised per batch and Warn lines of a kind are written at most
// about once a second: over thousands of failed publishes the Warn lines stay within (seconds elapsed + 1) per
// kind, and every failure is still at Debug.
func TestFailureLogsAggregated(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		n := 5000
		enqueueMany(t, db, newOutbox(t, db), n, func(i int) outbox.Message {
			return outbox.Message{Topic: "t", Key: "k" + strconv.Itoa(i)}
		})
		var calls atomic.Int64
		pub := relay.PublisherFunc(func(context.Context, outbox.Record) error {
			calls.Add(1)
			return errors.New("broker says no")
		})
		logs := &lineCounter{}
		start := time.Now()
		r := newRelay(t, db, pub, func(c *relay.Config) {
			c.Logger, c.MaxAttempts, c.MinBackoff, c.MaxBackoff = logs.logger(), 3, time.Millisecond, time.Millisecond
		})
		stop := runRelay(t, r)
		waitUntil(t, 2*time.Minute, "every row dead-lettered", func() bool { return count(t, db, "txbox_outbox_dead") == n })
		stop()
		elapsed := time.Since(start)
		kinds := 2 // "publishes failed" and "rows moved to the dead-letter table"
		limit := kinds * (int(elapsed/time.Second) + 1)
		warns := logs.atLevel(slog.LevelWarn)
		t.Logf("%d failed publishes in %s: %d Warn lines, %d Debug lines", calls.Load(), elapsed.Round(time.Millisecond),
			warns, logs.atLevel(slog.LevelDebug))
		if calls.Load() < int64(3*n) {
			t.Fatalf("%d publishes, want at least %d (3 attempts each)", calls.Load(), 3*n)
		}
		if warns == 0 || warns > limit {
			t.Errorf("%d Warn lines, want between 1 and %d", warns, limit)
		}
		if d := logs.count("relay: publish failed"); d != 3*n {
			t.Errorf("%d Debug lines for failed publishes, want %d (one per failure)", d, 3*n)
		}
	})
}
