package dialect

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// postgresInboxSQL is the inbox's SQL for PostgreSQL, rendered once per table set.
//
// A failed statement aborts a PostgreSQL transaction, so the claim cannot treat a unique violation as an
// answer the way MySQL does: it uses INSERT ... ON CONFLICT DO NOTHING RETURNING, which waits for a concurrent
// inserter of the same key to end and then either inserts (it rolled back) or returns no row (it committed).
// The existing row is then read by a second statement: under READ COMMITTED it takes a fresh snapshot that
// sees a row committed while the INSERT waited (a CTE in the INSERT's statement would not).
type postgresInboxSQL struct {
	claim, claimRead, clearAttempts        string
	recordFailure                          string
	parkInbox, parkDead                    string
	settleLock, settleInsert, settleUpdate string
	purge, purgeAttempts                   string
	inboxDeadSQL
}

var postgresInboxCache sqlCache[postgresInboxSQL]

const postgresDeadColumns = "id, consumer, msg_key, fingerprint, payload, headers, topic, message_id, attempts, last_error, parked_at"

func (d postgresDialect) inboxSQL(t InboxTables) (*postgresInboxSQL, error) {
	return postgresInboxCache.get(t, func(t InboxTables) (*postgresInboxSQL, error) {
		q, err := quoteInboxTables(t, d.QuoteIdent)
		if err != nil {
			return nil, err
		}
		return &postgresInboxSQL{
			// A plain INSERT, not a CTE that also reads the existing row: reading it in the same statement would
			// save a round trip for duplicates (10% in BenchmarkProcess) but costs more on every new key
			// (inbox/raw 0.46 → 0.55 with lib/pq, 0.62 → 0.64 with pgx, medians of five runs).
			claim: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at) " +
				"VALUES ($1, $2, $3, COALESCE($4::timestamptz, now())) " +
				"ON CONFLICT (consumer, msg_key) DO NOTHING RETURNING TRUE, NULL::bytea, FALSE",
			claimRead:     "SELECT fingerprint, parked FROM " + q.inbox + " WHERE consumer = $1 AND msg_key = $2",
			clearAttempts: "DELETE FROM " + q.attempts + " WHERE consumer = $1 AND msg_key = $2",

			recordFailure: "INSERT INTO " + q.attempts + " AS a (consumer, msg_key, attempts, last_error, updated_at) " +
				"VALUES ($1, $2, 1, $3, now()) ON CONFLICT (consumer, msg_key) DO UPDATE SET " +
				"attempts = a.attempts + 1, last_error = EXCLUDED.last_error, updated_at = EXCLUDED.updated_at " +
				"RETURNING attempts",

			parkInbox: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at, parked) " +
				"VALUES ($1, $2, $3, now(), TRUE) ON CONFLICT (consumer, msg_key) DO NOTHING RETURNING TRUE",
			parkDead: "INSERT INTO " + q.dead + " AS t (consumer, msg_key, fingerprint, payload, headers, topic, " +
				"message_id, attempts, last_error, parked_at) VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, now()) " +
				"ON CONFLICT (consumer, msg_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, " +
				"payload = EXCLUDED.payload, headers = EXCLUDED.headers, topic = EXCLUDED.topic, " +
				"message_id = EXCLUDED.message_id, attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error, " +
				"parked_at = EXCLUDED.parked_at",

			settleLock: "SELECT parked FROM " + q.inbox + " WHERE consumer = $1 AND msg_key = $2 FOR UPDATE",
			settleInsert: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at) " +
				"VALUES ($1, $2, $3, now()) ON CONFLICT (consumer, msg_key) DO NOTHING RETURNING TRUE",
			settleUpdate: "UPDATE " + q.inbox + " SET parked = FALSE, received_at = now() WHERE consumer = $1 AND msg_key = $2",

			// The batch is chosen through the partial purge index and locked with SKIP LOCKED (a row a Replay
			// holds is left for the next run) in a CTE, which PostgreSQL evaluates once: as an IN (subquery)
			// the planner may rescan the subquery, and every rescan would pick further rows past the LIMIT. The
			// outer conditions are re-checked on the latest row version.
			purge: "WITH batch AS MATERIALIZED (SELECT msg_key FROM " + q.inbox + " WHERE consumer = $1 AND NOT parked " +
				"AND received_at < now() - $2::bigint * INTERVAL '1 microsecond' " +
				"ORDER BY received_at LIMIT $3 FOR UPDATE SKIP LOCKED) " +
				"DELETE FROM " + q.inbox + " AS t USING batch WHERE t.consumer = $1 AND t.msg_key = batch.msg_key " +
				"AND NOT t.parked AND t.received_at < now() - $2::bigint * INTERVAL '1 microsecond'",
			purgeAttempts: "WITH batch AS MATERIALIZED (SELECT msg_key FROM " + q.attempts + " WHERE consumer = $1 " +
				"AND updated_at < now() - $2::bigint * INTERVAL '1 microsecond' " +
				"ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED) " +
				"DELETE FROM " + q.attempts + " AS t USING batch WHERE t.consumer = $1 AND t.msg_key = batch.msg_key " +
				"AND t.updated_at < now() - $2::bigint * INTERVAL '1 microsecond'",

			inboxDeadSQL: inboxDeadSQL{
				deadGet:          "SELECT " + postgresDeadColumns + " FROM " + q.dead + " WHERE id = $1 AND consumer = $2",
				deadGetForUpdate: "SELECT " + postgresDeadColumns + " FROM " + q.dead + " WHERE id = $1 AND consumer = $2 FOR UPDATE",
				deadDelete:       "DELETE FROM " + q.dead + " WHERE id = $1 AND consumer = $2",
				deadList: "SELECT " + postgresDeadColumns + " FROM " + q.dead +
					" WHERE consumer = $1 AND id > $2 ORDER BY id LIMIT $3",
				deadListKey: "SELECT " + postgresDeadColumns + " FROM " + q.dead +
					" WHERE consumer = $1 AND msg_key = $2 AND id > $3 ORDER BY id LIMIT $4",
				unpark:        "DELETE FROM " + q.inbox + " WHERE consumer = $1 AND msg_key = $2 AND parked",
				checkInbox:    "SELECT consumer, msg_key, fingerprint, received_at, parked FROM " + q.inbox + " WHERE FALSE",
				checkAttempts: "SELECT consumer, msg_key, attempts, last_error, updated_at FROM " + q.attempts + " WHERE FALSE",
				checkDead:     "SELECT " + postgresDeadColumns + " FROM " + q.dead + " WHERE FALSE",
			},
		}, nil
	})
}

func (d postgresDialect) InboxClaim(ctx context.Context, tx DBTX, p *InboxClaimParams) (InboxClaimResult, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return InboxClaimResult{}, err
	}
	var at any
	if !p.ReceivedAt.IsZero() {
		at = p.ReceivedAt.UTC()
	}
	var r InboxClaimResult
	err = tx.QueryRowContext(ctx, s.claim, p.Consumer, p.Key, p.Fingerprint, at).Scan(&r.Inserted, &r.Fingerprint, &r.Parked)
	switch {
	case err == nil && r.Inserted:
		if p.ClearAttempts {
			if _, err := tx.ExecContext(ctx, s.clearAttempts, p.Consumer, p.Key); err != nil {
				return InboxClaimResult{}, fmt.Errorf("clear inbox attempts: %w", interpretError(err))
			}
		}
		return r, nil
	case err == nil:
		return r, nil
	case !errors.Is(err, sql.ErrNoRows):
		return InboxClaimResult{}, fmt.Errorf("record inbox key: %w", interpretError(err))
	}
	// No row: the key is recorded (perhaps committed while the INSERT waited). A new statement sees it.
	err = tx.QueryRowContext(ctx, s.claimRead, p.Consumer, p.Key).Scan(&r.Fingerprint, &r.Parked)
	if errors.Is(err, sql.ErrNoRows) {
		// Purged concurrently, or a REPEATABLE READ snapshot older than the conflicting commit.
		return r, retryableError("inbox key conflicted but is not visible (purged concurrently or snapshot too old)")
	}
	if err != nil {
		return r, fmt.Errorf("read recorded inbox key: %w", interpretError(err))
	}
	return r, nil
}

func (d postgresDialect) InboxRecordFailure(ctx context.Context, tx DBTX, p *InboxRecordFailureParams) (int, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return 0, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, s.recordFailure, p.Consumer, p.Key, p.LastError).Scan(&n); err != nil {
		return 0, fmt.Errorf("count inbox attempt: %w", interpretError(err))
	}
	return n, nil
}

func (d postgresDialect) InboxPark(ctx context.Context, tx DBTX, p *InboxParkParams) (bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return false, err
	}
	var ok bool
	err = tx.QueryRowContext(ctx, s.parkInbox, p.Consumer, p.Key, p.Fingerprint).Scan(&ok)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record parked inbox key: %w", interpretError(err))
	}
	payload := p.Payload
	if payload == nil {
		payload = []byte{}
	}
	var headers any // JSON as text: lib/pq would send a []byte as bytea, which jsonb rejects
	if len(p.Headers) > 0 {
		headers = string(p.Headers)
	}
	_, err = tx.ExecContext(ctx, s.parkDead, p.Consumer, p.Key, p.Fingerprint, payload, headers, p.Topic,
		p.MessageID, p.Attempts, p.LastError)
	if err != nil {
		return false, fmt.Errorf("insert inbox dead letter: %w", interpretError(err))
	}
	if _, err := tx.ExecContext(ctx, s.clearAttempts, p.Consumer, p.Key); err != nil {
		return false, fmt.Errorf("clear inbox attempts: %w", interpretError(err))
	}
	return true, nil
}

func (d postgresDialect) InboxDeadGet(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (InboxDeadRow, bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return InboxDeadRow{}, false, err
	}
	return s.getDead(ctx, tx, p, timeScan{pgNewTime, pgTimeOf})
}

func (d postgresDialect) InboxDeadDelete(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return false, err
	}
	return s.deleteDead(ctx, tx, p)
}

func (d postgresDialect) InboxDeadList(ctx context.Context, db DBTX, p *InboxDeadListParams) ([]InboxDeadRow, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return nil, err
	}
	return s.listDead(ctx, db, p, timeScan{pgNewTime, pgTimeOf})
}

func (d postgresDialect) InboxSettle(ctx context.Context, tx DBTX, p *InboxSettleParams) (bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return false, err
	}
	var parked bool
	err = tx.QueryRowContext(ctx, s.settleLock, p.Consumer, p.Key).Scan(&parked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		var ok bool
		err := tx.QueryRowContext(ctx, s.settleInsert, p.Consumer, p.Key, p.Fingerprint).Scan(&ok)
		if errors.Is(err, sql.ErrNoRows) {
			return false, retryableError("inbox key recorded concurrently while settling a dead letter")
		}
		if err != nil {
			return false, fmt.Errorf("record inbox key: %w", interpretError(err))
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("lock inbox key: %w", interpretError(err))
	case !parked:
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, s.settleUpdate, p.Consumer, p.Key); err != nil {
		return false, fmt.Errorf("unpark inbox key: %w", interpretError(err))
	}
	return true, nil
}

func (d postgresDialect) InboxUnpark(ctx context.Context, tx DBTX, p *InboxUnparkParams) (bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return false, err
	}
	return s.unparkKey(ctx, tx, p)
}

func (d postgresDialect) InboxPurge(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return 0, err
	}
	return execCount(ctx, tx, "purge inbox keys", s.purge, p.Consumer, p.OlderThan.Microseconds(), p.Limit)
}

func (d postgresDialect) InboxPurgeAttempts(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return 0, err
	}
	return execCount(ctx, tx, "purge inbox attempts", s.purgeAttempts, p.Consumer, p.OlderThan.Microseconds(), p.Limit)
}

func (d postgresDialect) InboxCheckSchema(ctx context.Context, db DBTX, t InboxTables) error {
	s, err := d.inboxSQL(t)
	if err != nil {
		return err
	}
	return s.checkSchema(ctx, db)
}
