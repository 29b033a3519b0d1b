package rmqlog

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// DefaultLevel is the level below which the client's records are dropped unless Install is given another one:
// the client logs every rebalance and heartbeat at Info.
const DefaultLevel = slog.LevelWarn

type sink struct {
	logger *slog.Logger
	level  slog.Level
}

var (
	current   atomic.Pointer[sink]
	installMu sync.Mutex
	installed bool
)

// Install sends the client's log records at or above level to logger (slog.Default() when nil), for the whole
// process. Safe for concurrent use.
func Install(logger *slog.Logger, level slog.Level) {
	if logger == nil {
		logger = slog.Default()
	}
	current.Store(&sink{logger: logger.With("component", "rocketmq-client"), level: level})
	installMu.Lock()
	defer installMu.Unlock()
	if !installed {
		rlog.SetLogger(adapter{})
		installed = true
	}
}

// adapter implements rlog.Logger on top of whatever sink is current.
type adapter struct{}

var _ rlog.Logger = adapter{}

func (adapter) Debug(msg string, fields map[string]interface{})   { emit(slog.LevelDebug, msg, fields) }
func (adapter) Info(msg string, fields map[string]interface{})    { emit(slog.LevelInfo, msg, fields) }
func (adapter) Warning(msg string, fields map[string]interface{}) { emit(slog.LevelWarn, msg, fields) }
func (adapter) Error(msg string, fields map[string]interface{})   { emit(slog.LevelError, msg, fields) }

// Fatal is logged at Error: the client calls it for conditions it survives, and a library must not exit.
func (adapter) Fatal(msg string, fields map[string]interface{}) {
	emit(slog.LevelError, msg, fields)
}

// Level is how rlog.SetLogLevel reaches the logger; it adjusts the current sink's threshold so that code which
// calls rlog.SetLogLevel("debug") still gets what it asked for.
func (adapter) Level(level string) {
	s := current.Load()
	if s == nil {
		return
	}
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error", "fatal":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	current.Store(&sink{logger: s.logger, level: l})
}

// OutputPath is ignored: the destination is the slog.Logger.
func (adapter) OutputPath(string) error { return nil }

func emit(level slog.Level, msg string, fields map[string]interface{}) {
	s := current.Load()
	if s == nil || level < s.level {
		return
	}
	ctx := context.Background()
	if !s.logger.Enabled(ctx, level) {
		return
	}
	if msg == "" && len(fields) == 0 {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, Sanitize(fields[k])))
	}
	s.logger.LogAttrs(ctx, level, strings.TrimSpace(msg), attrs...)
}

// Sanitize replaces messages (which carry payloads and user properties) by a short description; other values
// pass through unchanged.
func Sanitize(v interface{}) interface{} {
	switch m := v.(type) {
	case *primitive.MessageExt:
		return describeExt(m)
	case []*primitive.MessageExt:
		out := make([]string, len(m))
		for i, x := range m {
			out[i] = describeExt(x)
		}
		return out
	case *primitive.Message:
		if m == nil {
			return "<nil>"
		}
		return fmt.Sprintf("message{topic=%s}", m.Topic)
	case []*primitive.Message:
		return fmt.Sprintf("%d messages", len(m))
	case primitive.Message, primitive.MessageExt:
		return "message"
	}
	return v
}

func describeExt(m *primitive.MessageExt) string {
	if m == nil {
		return "<nil>"
	}
	q := -1
	if m.Queue != nil {
		q = m.Queue.QueueId
	}
	return fmt.Sprintf("message{topic=%s queue=%d offset=%d msgId=%s reconsume=%d}",
		m.Topic, q, m.QueueOffset, m.MsgId, m.ReconsumeTimes)
}
