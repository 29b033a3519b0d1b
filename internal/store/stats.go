package store

import (
	"context"
	"slices"
	"time"
)

// Stats is a snapshot of txbox's tables.
type Stats struct {
	Outbox OutboxStats `json:"outbox"`
	Inbox  InboxStats  `json:"inbox"`
}

// OutboxStats describes the outbox backlog.
type OutboxStats struct {
	// Pending counts rows not yet published (due now or later).
	Pending int64 `json:"pending"`
	// Due counts pending rows whose delivery time has come.
	Due int64 `json:"due"`
	// OldestPendingAge is how long the oldest unpublished row has waited since it was enqueued (0 when none).
	OldestPendingAge time.Duration `json:"oldest_pending_age_ns"`
	// Dead counts rows parked in the dead-letter table.
	Dead int64 `json:"dead"`
	// Topics breaks Pending and Dead down by topic, sorted by topic.
	Topics []TopicStats `json:"topics"`
}

// TopicStats is one topic's share of the outbox.
type TopicStats struct {
	Topic   string `json:"topic"`
	Pending int64  `json:"pending"`
	Dead    int64  `json:"dead"`
}

// InboxStats describes the inbox.
type InboxStats struct {
	// Keys counts recorded (consumer, key) pairs still within retention. With the partitioned layout a key
	// recorded in two partitions (a claim within the claim window of a boundary) counts twice, and so does a
	// key recorded in both tables while the inbox converts.
	Keys int64 `json:"keys"`
	// Dead counts parked messages.
	Dead int64 `json:"dead"`
	// Consumers breaks Keys and Dead down by consumer, sorted by name.
	Consumers []ConsumerStats `json:"consumers"`
}

// ConsumerStats is one consumer's share of the inbox.
type ConsumerStats struct {
	Consumer string `json:"consumer"`
	Keys     int64  `json:"keys"`
	Dead     int64  `json:"dead"`
}

// statsQueries are the statements Stats runs, in order.
type statsQueries struct {
	outboxSummary string // pending, due, oldest age in microseconds
	outboxTopics  string // topic, pending
	outboxDead    string // topic, dead
	inboxKeys     string // consumer, keys
	inboxDead     string // consumer, dead
}

// Stats reads the numbers operators look at.
func (s *sqlStore) Stats(ctx context.Context, db DBTX) (*Stats, error) {
	st, err := runStats(ctx, db, s.st)
	return st, s.interpret(err)
}

func runStats(ctx context.Context, db DBTX, q statsQueries) (*Stats, error) {
	st := &Stats{}
	var ageMicros int64
	if err := db.QueryRowContext(ctx, q.outboxSummary).Scan(&st.Outbox.Pending, &st.Outbox.Due, &ageMicros); err != nil {
		return nil, err
	}
	st.Outbox.OldestPendingAge = time.Duration(ageMicros) * time.Microsecond
	topics := map[string]*TopicStats{}
	var order []string
	topic := func(name string) *TopicStats {
		if t, ok := topics[name]; ok {
			return t
		}
		topics[name] = &TopicStats{Topic: name}
		order = append(order, name)
		return topics[name]
	}
	if err := scanCounts(ctx, db, q.outboxTopics, func(name string, n int64) { topic(name).Pending = n }); err != nil {
		return nil, err
	}
	if err := scanCounts(ctx, db, q.outboxDead, func(name string, n int64) { topic(name).Dead = n; st.Outbox.Dead += n }); err != nil {
		return nil, err
	}
	slices.Sort(order)
	for _, name := range order {
		st.Outbox.Topics = append(st.Outbox.Topics, *topics[name])
	}
	consumers := map[string]*ConsumerStats{}
	order = order[:0]
	consumer := func(name string) *ConsumerStats {
		if c, ok := consumers[name]; ok {
			return c
		}
		consumers[name] = &ConsumerStats{Consumer: name}
		order = append(order, name)
		return consumers[name]
	}
	if err := scanCounts(ctx, db, q.inboxKeys, func(name string, n int64) { consumer(name).Keys = n; st.Inbox.Keys += n }); err != nil {
		return nil, err
	}
	if err := scanCounts(ctx, db, q.inboxDead, func(name string, n int64) { consumer(name).Dead = n; st.Inbox.Dead += n }); err != nil {
		return nil, err
	}
	slices.Sort(order)
	for _, name := range order {
		st.Inbox.Consumers = append(st.Inbox.Consumers, *consumers[name])
	}
	return st, nil
}

func scanCounts(ctx context.Context, db DBTX, query string, fn func(string, int64)) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return err
		}
		fn(name, n)
	}
	return rows.Err()
}
