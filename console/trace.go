package console

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// EventKind is what happened to a message, as a trace tells it.
type EventKind string

// The events of a trace. Outbox rows give enqueued and then one of scheduled, waiting, retrying, published or
// dead-lettered; the broker gives stored; inbox tables give processed, failing or parked.
const (
	EventEnqueued     EventKind = "enqueued"      // written to the outbox (created_at: the enqueuing transaction's time)
	EventScheduled    EventKind = "scheduled"     // in the outbox, due later (DeliverAt)
	EventWaiting      EventKind = "waiting"       // in the outbox, due, not published yet
	EventRetrying     EventKind = "retrying"      // in the outbox after failed publishes; At is the next attempt
	EventPublished    EventKind = "published"     // the relay recorded the broker's confirm (kept by its Retention)
	EventDeadLettered EventKind = "dead-lettered" // moved to the outbox's dead-letter table
	EventStored       EventKind = "stored"        // a copy stored on the broker
	EventProcessed    EventKind = "processed"     // recorded in a consumer's inbox: its effects committed
	EventFailing      EventKind = "failing"       // a consumer's handler failed on it; At is the last failure
	EventParked       EventKind = "parked"        // moved to a consumer's dead-letter table
)

// order sorts events of one instant in the order they happen. Instants tie within one transaction (on
// PostgreSQL every row of a transaction gets its start time): a consumer that records a key and enqueues what
// it produces does both at once, and the key came first.
var order = map[EventKind]int{EventFailing: 0, EventProcessed: 1, EventParked: 1, EventEnqueued: 2, EventScheduled: 3,
	EventWaiting: 3, EventRetrying: 3, EventStored: 4, EventPublished: 5, EventDeadLettered: 5}

// waitingTooLong is how long a due row may wait for a relay before a trace asks for attention.
const waitingTooLong = time.Minute

// Event is one step of a message's life.
type Event struct {
	At     time.Time `json:"at"`
	Kind   EventKind `json:"kind"`
	Source string    `json:"source"` // the database's name, or "broker"
	Key    string    `json:"key"`
	Topic  string    `json:"topic,omitempty"`
	// Consumer is the inbox consumer, for processed, failing and parked.
	Consumer string `json:"consumer,omitempty"`
	// ID is the row's id in its table (outbox, published or dead-letter row; inbox dead letter), 0 for an
	// inbox key.
	ID int64 `json:"id,omitempty"`
	// Attempts counts failed attempts: publishes for outbox rows (a published row's earlier failures),
	// deliveries for inbox rows.
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
	// Detail says the rest in words: "due in 3s", "queue broker-a/2, offset 17".
	Detail string `json:"detail,omitempty"`
	// TraceID is the W3C trace id of the message's traceparent header, when it carried one.
	TraceID string `json:"trace_id,omitempty"`
	// Attention marks what an operator should look at: a message retrying, dead-lettered, failing or parked,
	// or due for longer than a minute without a relay publishing it.
	Attention bool `json:"attention,omitempty"`
}

// Source is one place a trace read, and how that went.
type Source struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // "database" or "broker"
	// Error is why the source could not be read (the trace shows what the other sources hold).
	Error string `json:"error,omitempty"`
	// Truncated is true when the source held more rows than the trace limit.
	Truncated bool `json:"truncated,omitempty"`
}

// Trace is where the messages with a business key are: one timeline across every database (and the broker).
type Trace struct {
	Key string `json:"key"`
	// Exact is false when the trace also covers the keys under Key (Key + "/...").
	Exact   bool      `json:"exact"`
	At      time.Time `json:"at"` // when it was read
	Events  []Event   `json:"events"`
	Sources []Source  `json:"sources"`
}

// Attention returns the events that need an operator.
func (t *Trace) Attention() []Event {
	var out []Event
	for _, e := range t.Events {
		if e.Attention {
			out = append(out, e)
		}
	}
	return out
}

// Trace reads where the messages with business key key are in every database: outbox rows (enqueued,
// attempts, last error, when due), published rows (when the relay keeps them), outbox dead letters, and for
// every inbox consumer the key processed, failing or parked. Unless exact, the keys under key count too
// ("12345" finds "12345/created" and "12345/payment", the keys inbox.Key builds). With a Broker, the broker's
// copies of each traced (topic, key) are added. A database or broker that cannot be read is reported in
// Trace.Sources; the others are still traced. Each database is read in one REPEATABLE READ transaction, so a
// row moving between tables meanwhile is seen once.
func (c *Console) Trace(ctx context.Context, key string, exact bool) (*Trace, error) {
	if err := dialect.CheckKey(key); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	defer cancel()
	tr := &Trace{Key: key, Exact: exact, At: time.Now().UTC(), Events: []Event{}}
	lookups := map[[2]string]bool{} // (topic, key) pairs the broker is asked about
	for _, d := range c.dbs {
		src := Source{Name: d.Name, Kind: "database"}
		rows, err := d.trace(ctx, store.KeyMatch{Key: key, Children: !exact}, c.cfg.TraceLimit)
		if err != nil {
			src.Error = err.Error()
		} else {
			src.Truncated = rows.Truncated
			for _, e := range events(d.Name, rows) {
				tr.Events = append(tr.Events, e)
				if e.Kind == EventEnqueued || e.Kind == EventParked {
					lookups[[2]string{e.Topic, e.Key}] = e.Topic != ""
				}
			}
		}
		tr.Sources = append(tr.Sources, src)
	}
	if c.cfg.Broker != nil {
		tr.Sources = append(tr.Sources, c.lookupBroker(ctx, lookups, tr))
	}
	sortEvents(tr.Events)
	return tr, nil
}

func (d *database) trace(ctx context.Context, m store.KeyMatch, limit int) (*store.TraceRows, error) {
	tx, err := d.DB.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("begin a read-only transaction: %w", d.Dialect.InterpretError(err))
	}
	defer func() { _ = tx.Rollback() }()
	return d.s.TraceKey(ctx, tx, &store.TraceParams{Match: m, Limit: limit})
}

// maxBrokerLookups bounds the broker queries of one trace.
const maxBrokerLookups = 20

func (c *Console) lookupBroker(ctx context.Context, lookups map[[2]string]bool, tr *Trace) Source {
	src := Source{Name: c.cfg.Broker.Name(), Kind: "broker"}
	pairs := make([][2]string, 0, len(lookups))
	for p, ok := range lookups {
		if ok {
			pairs = append(pairs, p)
		}
	}
	slices.SortFunc(pairs, func(a, b [2]string) int { return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1])) })
	if len(pairs) > maxBrokerLookups {
		pairs, src.Truncated = pairs[:maxBrokerLookups], true
	}
	var errs []string
	for _, p := range pairs {
		msgs, err := c.cfg.Broker.Lookup(ctx, p[0], p[1])
		if err != nil {
			errs = append(errs, fmt.Sprintf("topic %s key %s: %v", p[0], p[1], err))
			continue
		}
		for _, m := range msgs {
			e := Event{At: m.StoredAt.UTC(), Kind: EventStored, Source: "broker", Key: p[1], Topic: m.Topic,
				Attempts: m.Reconsumes, Detail: fmt.Sprintf("queue %s, offset %d, msg id %s, stored by %s, born %s",
					m.Queue, m.QueueOffset, m.MsgID, m.StoreHost, m.BornAt.UTC().Format(timeLayout))}
			tr.Events = append(tr.Events, e)
		}
	}
	src.Error = strings.Join(errs, "; ")
	return src
}

func sortEvents(es []Event) {
	slices.SortStableFunc(es, func(a, b Event) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(order[a.Kind], order[b.Kind]), strings.Compare(a.Key, b.Key),
			strings.Compare(a.Source, b.Source))
	})
}

// timeLayout is how traces print instants: UTC with milliseconds.
const timeLayout = "2006-01-02 15:04:05.000Z07:00"

// events turns one database's rows into events.
func events(source string, r *store.TraceRows) []Event {
	var out []Event
	add := func(e Event) { e.Source = source; out = append(out, e) }
	for _, m := range r.Pending {
		tid := traceID(m.Headers)
		add(Event{At: m.CreatedAt, Kind: EventEnqueued, Key: m.Key, Topic: m.Topic, ID: m.ID, TraceID: tid,
			Detail: messageDetail(m)})
		e := Event{At: m.AvailableAt, Key: m.Key, Topic: m.Topic, ID: m.ID, Attempts: m.Attempts, Error: m.LastError,
			TraceID: tid}
		switch wait := r.Now.Sub(m.AvailableAt); {
		case m.Attempts > 0:
			e.Kind, e.Attention = EventRetrying, true
			e.Detail = fmt.Sprintf("%s; next attempt %s", plural(m.Attempts, "failed publish", "failed publishes"), relative(-wait))
		case wait < 0:
			e.Kind, e.Detail = EventScheduled, "due "+relative(-wait)
		default:
			e.Kind, e.Attention = EventWaiting, wait > waitingTooLong
			e.Detail = "due " + relative(-wait) + ", not published yet: is a relay running on this database?"
		}
		add(e)
	}
	for _, m := range r.Published {
		tid := traceID(m.Headers)
		add(Event{At: m.CreatedAt, Kind: EventEnqueued, Key: m.Key, Topic: m.Topic, ID: m.ID, TraceID: tid,
			Detail: messageDetail(m)})
		add(Event{At: m.PublishedAt, Kind: EventPublished, Key: m.Key, Topic: m.Topic, ID: m.ID, Attempts: m.Attempts,
			TraceID: tid, Detail: fmt.Sprintf("confirmed by the broker after %s; recorded %s after enqueue",
				plural(m.Attempts+1, "attempt", "attempts"), m.PublishedAt.Sub(m.CreatedAt).Round(time.Microsecond))})
	}
	for _, m := range r.Dead {
		tid := traceID(m.Headers)
		add(Event{At: m.CreatedAt, Kind: EventEnqueued, Key: m.Key, Topic: m.Topic, ID: m.ID, TraceID: tid,
			Detail: messageDetail(m)})
		add(Event{At: m.DeadAt, Kind: EventDeadLettered, Key: m.Key, Topic: m.Topic, ID: m.ID, Attempts: m.Attempts,
			Error: m.LastError, TraceID: tid, Attention: true,
			Detail: "after " + plural(m.Attempts, "failed publish", "failed publishes") + ": requeue or drop it"})
	}
	parked := map[[2]string]bool{}
	for _, p := range r.Parked {
		parked[[2]string{p.Consumer, p.Key}] = true
		detail := fmt.Sprintf("inbox dead letter %d after %s", p.ID, plural(p.Attempts, "failed delivery", "failed deliveries"))
		if p.MessageID != "" {
			detail += ", broker msg id " + p.MessageID
		}
		add(Event{At: p.ParkedAt, Kind: EventParked, Key: p.Key, Topic: p.Topic, Consumer: p.Consumer, ID: p.ID,
			Attempts: p.Attempts, Error: p.LastError, TraceID: traceID(p.Headers), Attention: true,
			Detail: detail + ": replay or drop it"})
	}
	for _, k := range r.Keys {
		switch {
		case !k.Parked:
			add(Event{At: k.ReceivedAt, Kind: EventProcessed, Key: k.Key, Consumer: k.Consumer,
				Detail: "effects committed; redeliveries are absorbed as duplicates"})
		case !parked[[2]string{k.Consumer, k.Key}]:
			add(Event{At: k.ReceivedAt, Kind: EventParked, Key: k.Key, Consumer: k.Consumer, Attention: true,
				Detail: "recorded as parked, but its dead letter is gone"})
		}
	}
	for _, a := range r.Attempts {
		add(Event{At: a.UpdatedAt, Kind: EventFailing, Key: a.Key, Consumer: a.Consumer, Attempts: a.Attempts,
			Error: a.LastError, Attention: true, Detail: plural(a.Attempts, "failed delivery", "failed deliveries") + " so far"})
	}
	return out
}

// messageDetail describes an outbox message; its id stays the same in the published and dead-letter tables.
func messageDetail(m store.TraceMessage) string {
	s := fmt.Sprintf("outbox id %d, %d bytes", m.ID, m.PayloadBytes)
	if m.ShardingKey != "" {
		s += ", sharding key " + m.ShardingKey
	}
	if m.Tag != "" {
		s += ", tag " + m.Tag
	}
	return s
}

// plural says "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// relative says when an instant d from now is: "in 3s", "12s ago", "now".
func relative(d time.Duration) string {
	d = d.Round(time.Millisecond)
	switch {
	case d > 0:
		return "in " + d.String()
	case d < 0:
		return (-d).String() + " ago"
	}
	return "now"
}

// traceID returns the trace id of a W3C traceparent header ("00-<trace id>-<span id>-<flags>") in stored
// headers, or "".
func traceID(headers []byte) string {
	if len(headers) == 0 {
		return ""
	}
	var h map[string]string
	if json.Unmarshal(headers, &h) != nil {
		return ""
	}
	parts := strings.Split(h["traceparent"], "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return ""
	}
	for _, c := range parts[1] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return ""
		}
	}
	return parts[1]
}
