package dialect

import (
	"context"
	"fmt"
)

func (d mysqlDialect) Stats(ctx context.Context, db DBTX, p *StatsParams) (*Stats, error) {
	t, err := p.quoted(d.QuoteIdent)
	if err != nil {
		return nil, err
	}
	return runStats(ctx, db, statsQueries{
		outboxSummary: fmt.Sprintf(`SELECT COUNT(*),
       COALESCE(SUM(available_at <= UTC_TIMESTAMP(6)), 0),
       COALESCE(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), UTC_TIMESTAMP(6)), 0)
FROM %s`, t[0]),
		outboxTopics: fmt.Sprintf("SELECT topic, COUNT(*) FROM %s GROUP BY topic", t[0]),
		outboxDead:   fmt.Sprintf("SELECT topic, COUNT(*) FROM %s GROUP BY topic", t[1]),
		inboxKeys:    fmt.Sprintf("SELECT consumer, COUNT(*) FROM %s GROUP BY consumer", t[2]),
		inboxDead:    fmt.Sprintf("SELECT consumer, COUNT(*) FROM %s GROUP BY consumer", t[3]),
	})
}
