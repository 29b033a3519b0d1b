package dialect

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// inboxDeadSQL are the inbox statements whose Go is the same on both dialects (only their SQL differs): reading,
// listing and deleting dead letters, unparking a key and checking the schema.
type inboxDeadSQL struct {
	deadGet, deadGetForUpdate, deadDelete string
	deadList, deadListKey                 string
	unpark                                string
	checkInbox, checkAttempts, checkDead  string
}

// timeScan reads a dialect's timestamp column as UTC: newTime makes a scanner, at reads it.
type timeScan struct {
	newTime func() sql.Scanner
	at      func(sql.Scanner) time.Time
}

func (s *inboxDeadSQL) getDead(ctx context.Context, tx DBTX, p *InboxDeadGetParams, ts timeScan) (InboxDeadRow, bool, error) {
	q := s.deadGet
	if p.ForUpdate {
		q = s.deadGetForUpdate
	}
	rows, err := tx.QueryContext(ctx, q, p.ID, p.Consumer)
	if err != nil {
		return InboxDeadRow{}, false, fmt.Errorf("read inbox dead letter: %w", interpretError(err))
	}
	list, err := scanInboxDead(rows, ts)
	if err != nil || len(list) == 0 {
		return InboxDeadRow{}, false, err
	}
	return list[0], true, nil
}

// deleteDead's count is the number of rows deleted, whatever MySQL's clientFoundRows says.
func (s *inboxDeadSQL) deleteDead(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (bool, error) {
	n, err := execCount(ctx, tx, "delete inbox dead letter", s.deadDelete, p.ID, p.Consumer)
	return n > 0, err
}

func (s *inboxDeadSQL) listDead(ctx context.Context, db DBTX, p *InboxDeadListParams, ts timeScan) ([]InboxDeadRow, error) {
	var rows *sql.Rows
	var err error
	if p.Key != "" {
		rows, err = db.QueryContext(ctx, s.deadListKey, p.Consumer, p.Key, p.AfterID, p.Limit)
	} else {
		rows, err = db.QueryContext(ctx, s.deadList, p.Consumer, p.AfterID, p.Limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list inbox dead letters: %w", interpretError(err))
	}
	return scanInboxDead(rows, ts)
}

// unparkKey deletes by primary key, so it locks only the key's row.
func (s *inboxDeadSQL) unparkKey(ctx context.Context, tx DBTX, p *InboxUnparkParams) (bool, error) {
	n, err := execCount(ctx, tx, "delete parked inbox key", s.unpark, p.Consumer, p.Key)
	return n > 0, err
}

func (s *inboxDeadSQL) checkSchema(ctx context.Context, db DBTX) error {
	return checkQueries(ctx, db, s.checkInbox, s.checkAttempts, s.checkDead)
}

// scanInboxDead reads dead-letter rows in the column order of both dialects' dead-letter SELECTs.
func scanInboxDead(rows *sql.Rows, ts timeScan) ([]InboxDeadRow, error) {
	defer rows.Close()
	var out []InboxDeadRow
	for rows.Next() {
		var r InboxDeadRow
		var headers, lastErr sql.NullString
		at := ts.newTime()
		if err := rows.Scan(&r.ID, &r.Consumer, &r.Key, &r.Fingerprint, &r.Payload, &headers, &r.Topic,
			&r.MessageID, &r.Attempts, &lastErr, at); err != nil {
			return nil, fmt.Errorf("scan inbox dead letter: %w", interpretError(err))
		}
		if headers.Valid && headers.String != "" {
			r.Headers = []byte(headers.String)
		}
		r.LastError, r.ParkedAt = lastErr.String, ts.at(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read inbox dead letters: %w", interpretError(err))
	}
	return out, nil
}
