package console

import (
	"context"
	"time"
)

// Overview is the state of every database at a glance.
type Overview struct {
	At        time.Time          `json:"at"`
	Databases []DatabaseOverview `json:"databases"`
}

// DatabaseOverview is one database's outbox backlog, dead letters and inbox, per topic and consumer.
type DatabaseOverview struct {
	Name    string `json:"name"`
	Dialect string `json:"dialect"`
	Prefix  string `json:"prefix"`
	// Error is why the database could not be read; the counts are then zero.
	Error string `json:"error,omitempty"`

	Pending int64 `json:"pending"` // outbox rows not yet published
	Due     int64 `json:"due"`     // of which due now
	// OldestAge is how long the oldest pending row has waited, by the database's clock.
	OldestAge  time.Duration   `json:"oldest_age_ns"`
	OutboxDead int64           `json:"outbox_dead"`
	Topics     []TopicOverview `json:"topics"`

	InboxKeys int64              `json:"inbox_keys"` // recorded keys within retention
	InboxDead int64              `json:"inbox_dead"`
	Consumers []ConsumerOverview `json:"consumers"`
}

// TopicOverview is one topic's outbox rows.
type TopicOverview struct {
	Topic     string        `json:"topic"`
	Pending   int64         `json:"pending"`
	Due       int64         `json:"due"`
	OldestAge time.Duration `json:"oldest_age_ns"`
	Dead      int64         `json:"dead"`
}

// ConsumerOverview is one inbox consumer's rows.
type ConsumerOverview struct {
	Consumer string `json:"consumer"`
	Keys     int64  `json:"keys"`
	Dead     int64  `json:"dead"`
}

// Overview reads every database's backlog per topic (with the age of its oldest row), dead letters per
// topic and consumer, and inbox keys per consumer. Like `txbox status`, it counts the outbox and the inbox
// (scans): fine for an operator's page, not for a tight loop. A database that cannot be read is reported in
// its DatabaseOverview.Error.
func (c *Console) Overview(ctx context.Context) *Overview {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	defer cancel()
	o := &Overview{At: time.Now().UTC(), Databases: []DatabaseOverview{}}
	for _, d := range c.dbs {
		o.Databases = append(o.Databases, d.overview(ctx))
	}
	return o
}

func (d *database) overview(ctx context.Context) DatabaseOverview {
	o := DatabaseOverview{Name: d.Name, Dialect: d.Dialect.Name(), Prefix: d.Prefix, Topics: []TopicOverview{},
		Consumers: []ConsumerOverview{}}
	st, err := d.s.Stats(ctx, d.DB)
	if err != nil {
		o.Error = "read status: " + err.Error()
		return o
	}
	backlog, err := d.s.OutboxBacklog(ctx, d.DB)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	o.Pending, o.Due, o.OldestAge, o.OutboxDead = st.Outbox.Pending, st.Outbox.Due, st.Outbox.OldestPendingAge, st.Outbox.Dead
	o.InboxKeys, o.InboxDead = st.Inbox.Keys, st.Inbox.Dead
	ages := map[string]TopicOverview{}
	for _, b := range backlog {
		ages[b.Topic] = TopicOverview{Due: b.Due, OldestAge: b.OldestAge}
	}
	for _, t := range st.Outbox.Topics { // every topic with pending rows or dead letters, sorted
		a := ages[t.Topic]
		o.Topics = append(o.Topics, TopicOverview{Topic: t.Topic, Pending: t.Pending, Due: a.Due, OldestAge: a.OldestAge,
			Dead: t.Dead})
	}
	for _, cs := range st.Inbox.Consumers {
		o.Consumers = append(o.Consumers, ConsumerOverview{Consumer: cs.Consumer, Keys: cs.Keys, Dead: cs.Dead})
	}
	return o
}
