package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/internal/tracing"
)

// Outbox writes messages into the outbox table. It is safe for concurrent use.
type Outbox struct {
	cfg    Config
	s      store.Store
	notify bool
	log    *slog.Logger
	// epoch and lastNotify (nanoseconds since epoch, monotonic) space the NOTIFYs by NotifyInterval.
	epoch      time.Time
	lastNotify atomic.Int64
}

// New validates cfg, fills its defaults and returns an Outbox. Errors wrap ErrInvalidConfig.
func New(cfg Config) (*Outbox, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	t, _ := dialect.TablesFor(cfg.Prefix) // validated by withDefaults
	s, err := store.New(cfg.Dialect, t)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	o := &Outbox{cfg: cfg, s: s, notify: !cfg.DisableNotify, log: cfg.Logger, epoch: time.Now()}
	o.lastNotify.Store(-int64(cfg.NotifyInterval)) // the first Enqueue notifies
	return o, nil
}

// takeNotify reports whether this Enqueue sends a NOTIFY: the first one of each NotifyInterval does.
func (o *Outbox) takeNotify() bool {
	if !o.notify {
		return false
	}
	if o.cfg.NotifyInterval < 0 {
		return true
	}
	now := int64(time.Since(o.epoch))
	last := o.lastNotify.Load()
	return now-last >= int64(o.cfg.NotifyInterval) && o.lastNotify.CompareAndSwap(last, now)
}

// Config returns the Outbox's configuration with defaults filled in.
func (o *Outbox) Config() Config { return o.cfg }

// Enqueue writes msgs into the outbox inside tx, the caller's transaction, in one statement. It never commits
// or rolls back tx: the messages are published if and only if the caller commits. Every message is validated
// before anything is written; an invalid one fails the whole call with an error wrapping ErrInvalidMessage
// (and dialect.ErrInvalidKey for a bad key) that names the message's index. An unmigrated database gives an
// error wrapping dialect.ErrSchemaMissing.
//
// tx may also be a *sql.DB or *sql.Conn; the messages are then committed at once, outside any business
// transaction, which is rarely what a producer wants.
func (o *Outbox) Enqueue(ctx context.Context, tx dialect.DBTX, msgs ...Message) (err error) {
	if len(msgs) == 0 {
		return nil
	}
	// The producer span's context is what the messages carry (traceparent), so the relay's and the
	// consumer's spans continue its trace.
	ctx, span := tracing.Enqueue(ctx, o.cfg.TracerProvider, len(msgs), func(i int) (string, string) { return msgs[i].Topic, msgs[i].Key })
	defer func() { tracing.End(span, err) }()
	trace := o.traceHeaders(ctx)
	rows := make([]store.OutboxInsertRow, len(msgs))
	for i := range msgs {
		r, err := o.row(&msgs[i], trace)
		if err != nil {
			return fmt.Errorf("outbox: enqueue message %d: %w", i, err)
		}
		rows[i] = r
	}
	if err := o.s.OutboxInsert(ctx, tx, o.takeNotify(), rows); err != nil {
		return fmt.Errorf("outbox: enqueue %d messages into %s: %w", len(msgs), o.s.Tables().Outbox, err)
	}
	o.log.DebugContext(ctx, "outbox: enqueued", "count", len(msgs), "table", o.s.Tables().Outbox)
	return nil
}

// traceHeaders returns the trace context of ctx as headers, or nil when ctx carries none.
func (o *Outbox) traceHeaders(ctx context.Context) propagation.MapCarrier {
	c := propagation.MapCarrier{}
	o.cfg.Propagator.Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return c
}

// withTrace returns h plus the trace headers it does not set itself; h is never modified (it is the caller's).
func withTrace(h map[string]string, trace propagation.MapCarrier) map[string]string {
	if len(trace) == 0 {
		return h
	}
	out := make(map[string]string, len(h)+len(trace))
	for k, v := range trace {
		out[k] = v
	}
	for k, v := range h {
		out[k] = v
	}
	return out
}

func (o *Outbox) row(m *Message, trace propagation.MapCarrier) (store.OutboxInsertRow, error) {
	if err := dialect.CheckText("topic", m.Topic, dialect.MaxTopicBytes, ErrInvalidMessage); err != nil {
		return store.OutboxInsertRow{}, err
	}
	if err := dialect.CheckKey(m.Key); err != nil {
		return store.OutboxInsertRow{}, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if m.Tag != "" {
		if err := dialect.CheckText("tag", m.Tag, dialect.MaxTagBytes, ErrInvalidMessage); err != nil {
			return store.OutboxInsertRow{}, err
		}
	}
	if m.ShardingKey != "" {
		if err := dialect.CheckText("sharding key", m.ShardingKey, dialect.MaxShardingKeyBytes, ErrInvalidMessage); err != nil {
			return store.OutboxInsertRow{}, err
		}
	}
	if len(m.Payload) > o.cfg.MaxPayloadBytes {
		return store.OutboxInsertRow{}, fmt.Errorf("%w: payload is %d bytes, more than MaxPayloadBytes (%d)",
			ErrInvalidMessage, len(m.Payload), o.cfg.MaxPayloadBytes)
	}
	if err := checkDeliverAt(o.cfg.Dialect, m.DeliverAt); err != nil {
		return store.OutboxInsertRow{}, err
	}
	withHeaders := withTrace(m.Headers, trace)
	headers, err := o.encodeHeaders(withHeaders)
	if err != nil {
		return store.OutboxInsertRow{}, err
	}
	if o.cfg.Check != nil {
		final := *m
		final.Headers = withHeaders
		if err := o.cfg.Check(final); err != nil {
			return store.OutboxInsertRow{}, fmt.Errorf("%w: the transport cannot send it: %w", ErrInvalidMessage, err)
		}
	}
	return store.OutboxInsertRow{
		Partition:   PartitionOf(m.ShardingKey),
		Topic:       m.Topic,
		Key:         m.Key,
		Tag:         m.Tag,
		ShardingKey: m.ShardingKey,
		Payload:     m.Payload,
		Headers:     headers,
		DeliverAt:   m.DeliverAt,
	}, nil
}

// encodeHeaders validates headers and returns them as a JSON object, or nil for none. Names must be non-empty
// text without control characters (brokers use them as separators); values must be UTF-8 without NUL.
func (o *Outbox) encodeHeaders(h map[string]string) ([]byte, error) {
	if len(h) == 0 {
		return nil, nil
	}
	for k, v := range h {
		if err := dialect.CheckText("header name", k, o.cfg.MaxHeaderBytes, ErrInvalidMessage); err != nil {
			return nil, err
		}
		for i := 0; i < len(k); i++ {
			if k[i] < 0x20 || k[i] == 0x7f {
				return nil, fmt.Errorf("%w: header name %q contains a control character", ErrInvalidMessage, k)
			}
		}
		if v != "" {
			if err := dialect.CheckText(fmt.Sprintf("header %q value", k), v, o.cfg.MaxHeaderBytes, ErrInvalidMessage); err != nil {
				return nil, err
			}
		}
	}
	b, err := marshalHeaders(h)
	if err != nil {
		return nil, fmt.Errorf("%w: encode headers: %w", ErrInvalidMessage, err)
	}
	if len(b) > o.cfg.MaxHeaderBytes {
		return nil, fmt.Errorf("%w: headers take %d bytes, more than MaxHeaderBytes (%d)", ErrInvalidMessage, len(b), o.cfg.MaxHeaderBytes)
	}
	return b, nil
}

// marshalHeaders encodes headers as a JSON object without HTML escaping: json.Marshal writes '<', '>' and '&' as
// six bytes each, which would count against MaxHeaderBytes (and the MySQL column) for nothing.
func marshalHeaders(h map[string]string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// DecodeHeaders turns stored headers back into a map (nil for none).
func DecodeHeaders(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var h map[string]string
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("outbox: decode headers: %w", err)
	}
	return h, nil
}
