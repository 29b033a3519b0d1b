package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// traceMessageCols are the columns an outbox table shares in a trace, in the order scanTraceMessage reads them,
// followed by the table's own columns.
func traceMessageCols(a adminSQL) string {
	return "id, topic, msg_key, tag, sharding_key, " + a.bytes + "(payload), headers, attempts, created_at"
}

func (s *sqlStore) TraceKey(ctx context.Context, db DBTX, p *TraceParams) (*TraceRows, error) {
	if p.Limit < 1 || p.Limit > maxAdminPage {
		return nil, fmt.Errorf("trace key: limit must be between 1 and %d, got %d", maxAdminPage, p.Limit)
	}
	a := s.admin()
	out := &TraceRows{}
	now := s.times.newTime()
	if err := db.QueryRowContext(ctx, "SELECT "+a.now).Scan(now); err != nil {
		return nil, wrap("trace key: read the database clock", s.interpret(err))
	}
	out.Now = s.times.at(now)

	eq, lo, hi := p.Match.bounds()
	cols := traceMessageCols(a)
	messages := []struct {
		dst   *[]TraceMessage
		table string
		extra string
		set   func(m *TraceMessage, at time.Time, lastErr string)
	}{
		{&out.Pending, s.q.outbox, "available_at, last_error",
			func(m *TraceMessage, at time.Time, e string) { m.AvailableAt, m.LastError = at, e }},
		{&out.Published, s.q.outboxPublished, "published_at, NULL",
			func(m *TraceMessage, at time.Time, _ string) { m.PublishedAt = at }},
		{&out.Dead, s.q.outboxDead, "dead_at, last_error",
			func(m *TraceMessage, at time.Time, e string) { m.DeadAt, m.LastError = at, e }},
	}
	for _, t := range messages {
		q := a.bind("SELECT " + cols + ", " + t.extra + " FROM " + t.table + " WHERE " + keyCond + " ORDER BY id LIMIT ?")
		rows, err := db.QueryContext(ctx, q, eq, lo, hi, p.Limit+1)
		if err != nil {
			return nil, wrap("trace key in "+t.table, s.interpret(err))
		}
		found, err := scanAll(rows, func(rows *sql.Rows) (TraceMessage, error) {
			var m TraceMessage
			var headers, lastErr sql.NullString
			created, at := s.times.newTime(), s.times.newTime()
			err := rows.Scan(&m.ID, &m.Topic, &m.Key, &m.Tag, &m.ShardingKey, &m.PayloadBytes, &headers, &m.Attempts,
				created, at, &lastErr)
			if headers.Valid {
				m.Headers = []byte(headers.String)
			}
			m.CreatedAt = s.times.at(created)
			t.set(&m, s.times.at(at), lastErr.String)
			return m, err
		})
		if err != nil {
			return nil, wrap("trace key in "+t.table, s.interpret(err))
		}
		*t.dst = out.trim(found, p.Limit)
	}

	consumers, err := s.InboxConsumers(ctx, db)
	if err != nil || len(consumers) == 0 {
		return out, wrap("trace key", err)
	}
	// One branch per consumer, each a range of the (consumer, msg_key) index.
	perConsumer := func(cols, table string) (string, []any) {
		var b strings.Builder
		args := make([]any, 0, 5*len(consumers))
		for i, c := range consumers {
			if i > 0 {
				b.WriteString(" UNION ALL ")
			}
			b.WriteString("(SELECT " + cols + " FROM " + table + " WHERE consumer = ? AND " + keyCond +
				" ORDER BY msg_key LIMIT ?)")
			args = append(args, c, eq, lo, hi, p.Limit+1)
		}
		return a.bind(b.String()), args
	}
	var keys []InboxKeyRow
	var kb strings.Builder
	var args []any
	for i, c := range consumers {
		if i > 0 {
			kb.WriteString(" UNION ALL ")
		}
		kq, kargs := s.keysUnion("consumer = ? AND "+keyCond, []any{c, eq, lo, hi}, p.Limit+1)
		kb.WriteString("(" + kq + ")")
		args = append(args, kargs...)
	}
	q := a.bind(kb.String())
	if keys, err = queryTrace(ctx, db, s, q, args, s.scanInboxKey); err != nil {
		return nil, wrap("trace key in "+s.q.inbox, err)
	}
	out.Keys = trimPerConsumer(out, keys, p.Limit, func(r InboxKeyRow) string { return r.Consumer })

	q, args = perConsumer("consumer, msg_key, attempts, last_error, updated_at", s.q.inboxAttempts)
	attempts, err := queryTrace(ctx, db, s, q, args, func(rows *sql.Rows) (TraceInboxAttempts, error) {
		var r TraceInboxAttempts
		var lastErr sql.NullString
		at := s.times.newTime()
		err := rows.Scan(&r.Consumer, &r.Key, &r.Attempts, &lastErr, at)
		r.LastError, r.UpdatedAt = lastErr.String, s.times.at(at)
		return r, err
	})
	if err != nil {
		return nil, wrap("trace key in "+s.q.inboxAttempts, err)
	}
	out.Attempts = trimPerConsumer(out, attempts, p.Limit, func(r TraceInboxAttempts) string { return r.Consumer })

	q, args = perConsumer("id, consumer, msg_key, topic, message_id, "+a.bytes+"(payload), headers, attempts, "+
		"last_error, parked_at", s.q.inboxDead)
	parked, err := queryTrace(ctx, db, s, q, args, func(rows *sql.Rows) (TraceInboxDead, error) {
		var r TraceInboxDead
		var headers, lastErr sql.NullString
		at := s.times.newTime()
		err := rows.Scan(&r.ID, &r.Consumer, &r.Key, &r.Topic, &r.MessageID, &r.PayloadBytes, &headers, &r.Attempts,
			&lastErr, at)
		if headers.Valid && headers.String != "" {
			r.Headers = []byte(headers.String)
		}
		r.LastError, r.ParkedAt = lastErr.String, s.times.at(at)
		return r, err
	})
	if err != nil {
		return nil, wrap("trace key in "+s.q.inboxDead, err)
	}
	out.Parked = trimPerConsumer(out, parked, p.Limit, func(r TraceInboxDead) string { return r.Consumer })
	return out, nil
}

func queryTrace[T any](ctx context.Context, db DBTX, s *sqlStore, q string, args []any, scan func(*sql.Rows) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.interpret(err)
	}
	out, err := scanAll(rows, scan)
	return out, s.interpret(err)
}

// trim drops the row past limit that the query read to tell whether there were more.
func (t *TraceRows) trim(rows []TraceMessage, limit int) []TraceMessage {
	if len(rows) > limit {
		t.Truncated = true
		return rows[:limit]
	}
	return rows
}

// trimPerConsumer keeps at most limit rows per consumer (each branch read one more to tell).
func trimPerConsumer[T any](t *TraceRows, rows []T, limit int, consumer func(T) string) []T {
	n := map[string]int{}
	out := rows[:0]
	for _, r := range rows {
		c := consumer(r)
		if n[c]++; n[c] > limit {
			t.Truncated = true
			continue
		}
		out = append(out, r)
	}
	return out
}
