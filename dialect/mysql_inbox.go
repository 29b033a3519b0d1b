package dialect

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// mysqlInboxSQL is the inbox's SQL for MySQL/MariaDB, rendered once per table set.
//
// The claim is a plain INSERT whose duplicate-key error is the "already recorded" answer: InnoDB blocks the
// INSERT on the other transaction's uncommitted row, and a duplicate-key error rolls back only the statement,
// not the transaction. No rows-affected count is read anywhere (ON DUPLICATE KEY UPDATE reports 0, 1 or 2
// depending on clientFoundRows), and INSERT IGNORE is avoided because it would also hide truncation.
type mysqlInboxSQL struct {
	claim, claimRead, clearAttempts          string
	recordFailure, readAttempts              string
	parkInbox, parkDead                      string
	settleLock, settleInsert, settleUpdate   string
	purgeSelect, purgeDelete                 string
	purgeAttemptsSelect, purgeAttemptsDelete string
	inboxDeadSQL
}

var mysqlInboxCache sqlCache[mysqlInboxSQL]

const mysqlDeadColumns = "id, consumer, msg_key, fingerprint, payload, headers, topic, message_id, attempts, last_error, parked_at"

func (d mysqlDialect) inboxSQL(t InboxTables) (*mysqlInboxSQL, error) {
	return mysqlInboxCache.get(t, func(t InboxTables) (*mysqlInboxSQL, error) {
		q, err := quoteInboxTables(t, d.QuoteIdent)
		if err != nil {
			return nil, err
		}
		return &mysqlInboxSQL{
			claim: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at) " +
				"VALUES (?, ?, ?, COALESCE(?, UTC_TIMESTAMP(6)))",
			// A locking read: under REPEATABLE READ a plain SELECT could use a snapshot older than the row
			// whose commit made the INSERT fail. The duplicate-key error already left a shared lock on it.
			claimRead:     "SELECT fingerprint, parked FROM " + q.inbox + " WHERE consumer = ? AND msg_key = ? LOCK IN SHARE MODE",
			clearAttempts: "DELETE FROM " + q.attempts + " WHERE consumer = ? AND msg_key = ?",

			recordFailure: "INSERT INTO " + q.attempts + " (consumer, msg_key, attempts, last_error, updated_at) " +
				"VALUES (?, ?, 1, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE attempts = attempts + 1, " +
				"last_error = VALUES(last_error), updated_at = VALUES(updated_at)",
			readAttempts: "SELECT attempts FROM " + q.attempts + " WHERE consumer = ? AND msg_key = ?",

			parkInbox: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at, parked) " +
				"VALUES (?, ?, ?, UTC_TIMESTAMP(6), TRUE)",
			parkDead: "INSERT INTO " + q.dead + " (consumer, msg_key, fingerprint, payload, headers, topic, message_id, " +
				"attempts, last_error, parked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6)) " +
				"ON DUPLICATE KEY UPDATE fingerprint = VALUES(fingerprint), payload = VALUES(payload), " +
				"headers = VALUES(headers), topic = VALUES(topic), message_id = VALUES(message_id), " +
				"attempts = VALUES(attempts), last_error = VALUES(last_error), parked_at = VALUES(parked_at)",

			settleLock:   "SELECT parked FROM " + q.inbox + " WHERE consumer = ? AND msg_key = ? FOR UPDATE",
			settleInsert: "INSERT INTO " + q.inbox + " (consumer, msg_key, fingerprint, received_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))",
			settleUpdate: "UPDATE " + q.inbox + " SET parked = FALSE, received_at = UTC_TIMESTAMP(6) WHERE consumer = ? AND msg_key = ?",

			// A batch is chosen by a plain (non-locking, index-only) read of the purge index, then deleted
			// through a join that forces primary-key lookups. Not "DELETE ... ORDER BY received_at LIMIT n":
			// MariaDB 10.11 plans that as a range over the whole consumer in the primary key plus a filesort,
			// locking every expired row, not n. Not "DELETE ... WHERE msg_key IN (<keys>)" either: planned
			// as a full table scan (EXPLAIN, 3000 rows). JSON_TABLE ... STRAIGHT_JOIN gives eq_ref lookups.
			purgeSelect: "SELECT msg_key FROM " + q.inbox + " WHERE consumer = ? AND parked = FALSE " +
				"AND received_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY received_at LIMIT ?",
			purgeDelete: "DELETE t FROM JSON_TABLE(?, '$[*]' COLUMNS (k VARBINARY(512) PATH '$')) AS j " +
				"STRAIGHT_JOIN " + q.inbox + " AS t ON t.consumer = ? AND t.msg_key = j.k " +
				"WHERE t.parked = FALSE AND t.received_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND",
			purgeAttemptsSelect: "SELECT msg_key FROM " + q.attempts + " WHERE consumer = ? " +
				"AND updated_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY updated_at LIMIT ?",
			purgeAttemptsDelete: "DELETE t FROM JSON_TABLE(?, '$[*]' COLUMNS (k VARBINARY(512) PATH '$')) AS j " +
				"STRAIGHT_JOIN " + q.attempts + " AS t ON t.consumer = ? AND t.msg_key = j.k " +
				"WHERE t.updated_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND",

			inboxDeadSQL: inboxDeadSQL{
				deadGet:          "SELECT " + mysqlDeadColumns + " FROM " + q.dead + " WHERE id = ? AND consumer = ?",
				deadGetForUpdate: "SELECT " + mysqlDeadColumns + " FROM " + q.dead + " WHERE id = ? AND consumer = ? FOR UPDATE",
				deadDelete:       "DELETE FROM " + q.dead + " WHERE id = ? AND consumer = ?",
				deadList: "SELECT " + mysqlDeadColumns + " FROM " + q.dead +
					" WHERE consumer = ? AND id > ? ORDER BY id LIMIT ?",
				deadListKey: "SELECT " + mysqlDeadColumns + " FROM " + q.dead +
					" WHERE consumer = ? AND msg_key = ? AND id > ? ORDER BY id LIMIT ?",
				unpark:        "DELETE FROM " + q.inbox + " WHERE consumer = ? AND msg_key = ? AND parked = TRUE",
				checkInbox:    "SELECT consumer, msg_key, fingerprint, received_at, parked FROM " + q.inbox + " WHERE 1 = 0",
				checkAttempts: "SELECT consumer, msg_key, attempts, last_error, updated_at FROM " + q.attempts + " WHERE 1 = 0",
				checkDead:     "SELECT " + mysqlDeadColumns + " FROM " + q.dead + " WHERE 1 = 0",
			},
		}, nil
	})
}

func (d mysqlDialect) InboxClaim(ctx context.Context, tx DBTX, p *InboxClaimParams) (InboxClaimResult, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return InboxClaimResult{}, err
	}
	var at any
	if !p.ReceivedAt.IsZero() {
		at = mysqlTimeArg(p.ReceivedAt)
	}
	_, err = tx.ExecContext(ctx, s.claim, p.Consumer, p.Key, p.Fingerprint, at)
	if err == nil {
		if p.ClearAttempts {
			if _, err := tx.ExecContext(ctx, s.clearAttempts, p.Consumer, p.Key); err != nil {
				return InboxClaimResult{}, fmt.Errorf("clear inbox attempts: %w", interpretError(err))
			}
		}
		return InboxClaimResult{Inserted: true}, nil
	}
	if Classify(err) != KindDuplicateKey {
		return InboxClaimResult{}, fmt.Errorf("record inbox key: %w", interpretError(err))
	}
	r := InboxClaimResult{}
	err = tx.QueryRowContext(ctx, s.claimRead, p.Consumer, p.Key).Scan(&r.Fingerprint, &r.Parked)
	if errors.Is(err, sql.ErrNoRows) {
		return r, retryableError("inbox key vanished after a duplicate-key error (purged concurrently)")
	}
	if err != nil {
		return r, fmt.Errorf("read recorded inbox key: %w", interpretError(err))
	}
	return r, nil
}

func (d mysqlDialect) InboxRecordFailure(ctx context.Context, tx DBTX, p *InboxRecordFailureParams) (int, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, s.recordFailure, p.Consumer, p.Key, p.LastError); err != nil {
		return 0, fmt.Errorf("count inbox attempt: %w", interpretError(err))
	}
	// The row is ours (locked by the upsert) until commit; this read sees the count we just wrote.
	var n int
	if err := tx.QueryRowContext(ctx, s.readAttempts, p.Consumer, p.Key).Scan(&n); err != nil {
		return 0, fmt.Errorf("read inbox attempts: %w", interpretError(err))
	}
	return n, nil
}

func (d mysqlDialect) InboxPark(ctx context.Context, tx DBTX, p *InboxParkParams) (bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, s.parkInbox, p.Consumer, p.Key, p.Fingerprint); err != nil {
		if Classify(err) == KindDuplicateKey {
			return false, nil
		}
		return false, fmt.Errorf("record parked inbox key: %w", interpretError(err))
	}
	payload := p.Payload
	if payload == nil {
		payload = []byte{} // NOT NULL column; an empty payload is still a payload
	}
	_, err = tx.ExecContext(ctx, s.parkDead, p.Consumer, p.Key, p.Fingerprint, payload, nullIfEmpty(p.Headers),
		p.Topic, p.MessageID, p.Attempts, p.LastError)
	if err != nil {
		return false, fmt.Errorf("insert inbox dead letter: %w", interpretError(err))
	}
	if _, err := tx.ExecContext(ctx, s.clearAttempts, p.Consumer, p.Key); err != nil {
		return false, fmt.Errorf("clear inbox attempts: %w", interpretError(err))
	}
	return true, nil
}

func (d mysqlDialect) InboxDeadGet(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (InboxDeadRow, bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return InboxDeadRow{}, false, err
	}
	return s.getDead(ctx, tx, p, timeScan{mysqlNewTime, mysqlTimeOf})
}

func (d mysqlDialect) InboxDeadDelete(ctx context.Context, tx DBTX, p *InboxDeadGetParams) (bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return false, err
	}
	return s.deleteDead(ctx, tx, p)
}

func (d mysqlDialect) InboxDeadList(ctx context.Context, db DBTX, p *InboxDeadListParams) ([]InboxDeadRow, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return nil, err
	}
	return s.listDead(ctx, db, p, timeScan{mysqlNewTime, mysqlTimeOf})
}

func (d mysqlDialect) InboxSettle(ctx context.Context, tx DBTX, p *InboxSettleParams) (bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return false, err
	}
	var parked bool
	err = tx.QueryRowContext(ctx, s.settleLock, p.Consumer, p.Key).Scan(&parked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Parked keys are never purged, so this is rare (a parked row removed by hand); record it afresh.
		if _, err := tx.ExecContext(ctx, s.settleInsert, p.Consumer, p.Key, p.Fingerprint); err != nil {
			if Classify(err) == KindDuplicateKey {
				return false, retryableError("inbox key recorded concurrently while settling a dead letter")
			}
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

func (d mysqlDialect) InboxUnpark(ctx context.Context, tx DBTX, p *InboxUnparkParams) (bool, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return false, err
	}
	return s.unparkKey(ctx, tx, p)
}

func (d mysqlDialect) InboxPurge(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return 0, err
	}
	return mysqlPurge(ctx, tx, "purge inbox keys", s.purgeSelect, s.purgeDelete, p)
}

func (d mysqlDialect) InboxPurgeAttempts(ctx context.Context, tx DBTX, p *InboxPurgeParams) (int, error) {
	s, err := d.inboxSQL(p.Tables)
	if err != nil {
		return 0, err
	}
	return mysqlPurge(ctx, tx, "purge inbox attempts", s.purgeAttemptsSelect, s.purgeAttemptsDelete, p)
}

// mysqlPurge selects one batch of keys and deletes them by primary key (see mysqlInboxSQL.purgeSelect). The
// delete re-checks the age, so a key recorded again meanwhile is kept.
func mysqlPurge(ctx context.Context, tx DBTX, what, sel, del string, p *InboxPurgeParams) (int, error) {
	age := p.OlderThan.Microseconds()
	rows, err := tx.QueryContext(ctx, sel, p.Consumer, age, p.Limit)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, interpretError(err))
	}
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, fmt.Errorf("%s: %w", what, interpretError(err))
		}
		keys = append(keys, k)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("%s: %w", what, interpretError(err))
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", what, interpretError(err))
	}
	if len(keys) == 0 {
		return 0, nil
	}
	// Keys are valid UTF-8 without NUL bytes (CheckKey), so JSON carries them byte for byte.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(keys); err != nil {
		return 0, fmt.Errorf("%s: encode keys: %w", what, err)
	}
	return execCount(ctx, tx, what, del, b.String(), p.Consumer, age)
}

func (d mysqlDialect) InboxCheckSchema(ctx context.Context, db DBTX, t InboxTables) error {
	s, err := d.inboxSQL(t)
	if err != nil {
		return err
	}
	return s.checkSchema(ctx, db)
}
