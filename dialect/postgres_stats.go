package dialect

import (
	"context"
	"fmt"
)

func (d postgresDialect) Stats(ctx context.Context, db DBTX, p *StatsParams) (*Stats, error) {
	t, err := p.quoted(d.QuoteIdent)
	if err != nil {
		return nil, err
	}
	return runStats(ctx, db, statsQueries{
		outboxSummary: fmt.Sprintf(`SELECT COUNT(*),
       COUNT(*) FILTER (WHERE available_at <= clock_timestamp()),
       COALESCE((EXTRACT(EPOCH FROM clock_timestamp() - MIN(created_at)) * 1000000)::bigint, 0)
FROM %s`, t[0]),
		outboxTopics: fmt.Sprintf("SELECT topic, COUNT(*) FROM %s GROUP BY topic", t[0]),
		outboxDead:   fmt.Sprintf("SELECT topic, COUNT(*) FROM %s GROUP BY topic", t[1]),
		inboxKeys:    fmt.Sprintf("SELECT consumer, COUNT(*) FROM %s GROUP BY consumer", t[2]),
		inboxDead:    fmt.Sprintf("SELECT consumer, COUNT(*) FROM %s GROUP BY consumer", t[3]),
	})
}
