package dialect

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Arrays travel as text literals ('{1,2,3}') cast in SQL and row sets as JSON, so that the same statements
// work through lib/pq and pgx without driver-specific array types.

type pgTime struct{ sql.NullTime }

func pgNewTime() sql.Scanner           { return &pgTime{} }
func pgTimeOf(s sql.Scanner) time.Time { return s.(*pgTime).Time.UTC() }

func pgIntArray[T int | int64](xs []T) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, x := range xs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(int64(x), 10))
	}
	b.WriteByte('}')
	return b.String()
}

func (d postgresDialect) OutboxInsert(ctx context.Context, db DBTX, p *OutboxInsertParams) error {
	if len(p.Rows) == 0 {
		return nil
	}
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return err
	}
	var b strings.Builder
	args := make([]any, 0, len(p.Rows)*8+1)
	if p.Channel != "" {
		// NOTIFY is transactional: relays wake when the caller commits, never for a rollback. The data-modifying
		// CTE runs even though nothing reads it, so insert and notify cost one round trip.
		b.WriteString("WITH ins AS (")
	}
	b.WriteString("INSERT INTO " + t + " (part, topic, msg_key, tag, sharding_key, payload, headers, attempts, " +
		"available_at, created_at) VALUES ")
	n := 0
	ph := func() string { n++; return "$" + strconv.Itoa(n) }
	for i, r := range p.Rows {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "(%s, %s, %s, %s, %s, %s, %s::jsonb, 0, COALESCE(%s::timestamptz, now()), now())",
			ph(), ph(), ph(), ph(), ph(), ph(), ph(), ph())
		var at any
		if !r.DeliverAt.IsZero() {
			at = r.DeliverAt.UTC()
		}
		var headers any
		if r.Headers != nil {
			headers = string(r.Headers)
		}
		payload := r.Payload
		if payload == nil {
			payload = []byte{}
		}
		args = append(args, r.Partition, r.Topic, r.Key, r.Tag, r.ShardingKey, payload, headers, at)
	}
	if p.Channel != "" {
		b.WriteString(") SELECT pg_notify(" + ph() + ", '')")
		args = append(args, p.Channel)
	}
	if _, err := db.ExecContext(ctx, b.String(), args...); err != nil {
		return interpretError(err)
	}
	return nil
}

func (postgresDialect) OutboxPrepareConn(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
	return interpretError(err)
}

// PostgreSQL has no loose index scan; the recursive CTE emulates one (a skip scan): one dive per partition.
func (d postgresDialect) OutboxKeyedPartitions(ctx context.Context, db DBTX, p *OutboxKeyedPartitionsParams) ([]int, error) {
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "WITH RECURSIVE p(n) AS ("+
		"SELECT (SELECT part FROM "+t+" WHERE part >= 0 ORDER BY part LIMIT 1)"+
		" UNION ALL SELECT (SELECT part FROM "+t+" WHERE part > p.n ORDER BY part LIMIT 1) FROM p WHERE p.n IS NOT NULL)"+
		" SELECT n FROM p WHERE n IS NOT NULL")
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := scanInts(rows)
	return out, interpretError(err)
}

// Advisory lock keys: (hash of schema and table, partition). The two-int4 key space is separate from the
// one-bigint space the migration lock uses.
func (postgresDialect) OutboxLockPartitions(ctx context.Context, conn *sql.Conn, p *OutboxPartitionsParams) ([]int, error) {
	if len(p.Partitions) == 0 {
		return nil, nil
	}
	rows, err := conn.QueryContext(ctx, "SELECT p FROM unnest($1::int[]) AS p"+
		" WHERE pg_try_advisory_lock(hashtext(current_schema() || '.' || $2), p)", pgIntArray(p.Partitions), p.Table)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return nil, interpretError(err)
		}
		got = append(got, n)
	}
	return got, interpretError(rows.Err())
}

func (postgresDialect) OutboxUnlockPartitions(ctx context.Context, conn *sql.Conn, _ *OutboxPartitionsParams) error {
	_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock_all()")
	return interpretError(err)
}

func (d postgresDialect) OutboxSelectKeyed(ctx context.Context, tx DBTX, p *OutboxSelectKeyedParams) ([]OutboxRow, error) {
	if len(p.Partitions) == 0 {
		return nil, nil
	}
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return nil, err
	}
	// LATERAL: one short (part, id) range scan per partition. "part >= 0" tells the planner (whose statistics
	// often say every row has part -1) that few rows match, or it walks the primary key for ORDER BY id instead. The NOT EXISTS repeats the partial index's
	// predicate (available_at > created_at) so that it can use it.
	rows, err := tx.QueryContext(ctx, "SELECT "+outboxCols+" FROM unnest($1::int[]) AS p(n) CROSS JOIN LATERAL ("+
		"SELECT "+outboxCols+" FROM "+t+" AS o WHERE o.part = p.n AND o.part >= 0 AND o.available_at <= now()"+
		" AND NOT EXISTS (SELECT 1 FROM "+t+" AS b WHERE b.sharding_key = o.sharding_key AND b.part >= 0"+
		" AND b.available_at > b.created_at AND b.available_at > now() AND b.id < o.id)"+
		" ORDER BY o.part, o.id LIMIT $2) AS x", pgIntArray(p.Partitions), p.PerPartition)
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := scanOutboxRows(rows, p.PerPartition*len(p.Partitions), pgNewTime, pgTimeOf)
	return out, interpretError(err)
}

func (d postgresDialect) OutboxClaimUnkeyed(ctx context.Context, tx DBTX, p *OutboxClaimUnkeyedParams) ([]OutboxRow, error) {
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT "+outboxCols+" FROM "+t+" WHERE id > $1 AND part = -1"+
		" AND available_at <= now() ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED", p.AfterID, p.Limit)
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := scanOutboxRows(rows, p.Limit, pgNewTime, pgTimeOf)
	return out, interpretError(err)
}

func (d postgresDialect) OutboxDelete(ctx context.Context, tx DBTX, p *OutboxDeleteParams) (int64, error) {
	if len(p.Rows) == 0 {
		return 0, nil
	}
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return 0, err
	}
	ids := make([]int64, len(p.Rows))
	for i, r := range p.Rows {
		ids[i] = r.ID
	}
	q := "DELETE FROM " + t + " WHERE id = ANY($1::bigint[])"
	if p.PublishedTable != "" {
		pt, err := d.QuoteIdent(p.PublishedTable)
		if err != nil {
			return 0, err
		}
		q = "WITH d AS (" + q + " RETURNING *) INSERT INTO " + pt + " (id, part, topic, msg_key, tag, sharding_key," +
			" payload, headers, attempts, created_at, published_at) SELECT id, part, topic, msg_key, tag, sharding_key," +
			" payload, headers, attempts, created_at, now() FROM d"
	}
	res, err := tx.ExecContext(ctx, q, pgIntArray(ids))
	if err != nil {
		return 0, interpretError(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

type pgRetryJSON struct {
	ID  int64  `json:"id"`
	US  int64  `json:"us"`
	Err string `json:"err"`
}

func (d postgresDialect) OutboxRetry(ctx context.Context, tx DBTX, p *OutboxRetryParams) error {
	if len(p.Rows) == 0 {
		return nil
	}
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return err
	}
	js := make([]pgRetryJSON, len(p.Rows))
	for i, r := range p.Rows {
		js[i] = pgRetryJSON{ID: r.ID, US: r.Delay.Microseconds(), Err: pgText(clipError(r.Error))}
	}
	data, _ := json.Marshal(js)
	_, err = tx.ExecContext(ctx, "UPDATE "+t+" AS o SET attempts = o.attempts + 1,"+
		" available_at = now() + j.us * interval '1 microsecond', last_error = j.err"+
		" FROM jsonb_to_recordset($1::jsonb) AS j(id bigint, us bigint, err text) WHERE o.id = j.id", string(data))
	return interpretError(err)
}

// OutboxPurgePublished picks the batch in a CTE (evaluated once; SKIP LOCKED leaves rows another relay is
// purging to it) and deletes it by primary key.
func (d postgresDialect) OutboxPurgePublished(ctx context.Context, db DBTX, p *OutboxPurgePublishedParams) (int, error) {
	t, err := d.QuoteIdent(p.PublishedTable)
	if err != nil {
		return 0, err
	}
	return execCount(ctx, db, "purge published outbox rows", "WITH batch AS MATERIALIZED (SELECT id FROM "+t+
		" WHERE published_at < now() - $1::bigint * INTERVAL '1 microsecond' ORDER BY published_at LIMIT $2"+
		" FOR UPDATE SKIP LOCKED) DELETE FROM "+t+" AS t USING batch WHERE t.id = batch.id",
		p.OlderThan.Microseconds(), p.Limit)
}

func (d postgresDialect) OutboxBury(ctx context.Context, tx DBTX, p *OutboxBuryParams) error {
	if len(p.Rows) == 0 {
		return nil
	}
	q, err := quoteTables(d.QuoteIdent, p.Table, p.DeadTable)
	if err != nil {
		return err
	}
	js := make([]pgRetryJSON, len(p.Rows))
	for i, r := range p.Rows {
		js[i] = pgRetryJSON{ID: r.ID, Err: pgText(clipError(r.Error))}
	}
	data, _ := json.Marshal(js)
	_, err = tx.ExecContext(ctx, "WITH j AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS j(id bigint, err text)),"+
		" d AS (DELETE FROM "+q[0]+" AS o USING j WHERE o.id = j.id RETURNING o.*, j.err)"+
		" INSERT INTO "+q[1]+" (id, part, topic, msg_key, tag, sharding_key, payload, headers, attempts, created_at,"+
		" dead_at, last_error) SELECT id, part, topic, msg_key, tag, sharding_key, payload, headers, attempts + 1,"+
		" created_at, now(), err FROM d", string(data))
	return interpretError(err)
}

func (d postgresDialect) OutboxDeadList(ctx context.Context, db DBTX, p *OutboxDeadListParams) ([]OutboxDeadRow, error) {
	t, err := d.QuoteIdent(p.DeadTable)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT "+outboxDeadCols+" FROM "+t+" WHERE id > $1 ORDER BY id LIMIT $2",
		p.AfterID, p.Limit)
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := scanOutboxDeadRows(rows, pgNewTime, pgTimeOf)
	return out, interpretError(err)
}

func (d postgresDialect) OutboxDeadRequeue(ctx context.Context, tx DBTX, p *OutboxDeadRequeueParams) (int64, error) {
	if len(p.IDs) == 0 {
		return 0, nil
	}
	q, err := quoteTables(d.QuoteIdent, p.Table, p.DeadTable)
	if err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, "WITH d AS (DELETE FROM "+q[1]+" WHERE id = ANY($1::bigint[]) RETURNING *)"+
		" INSERT INTO "+q[0]+" (part, topic, msg_key, tag, sharding_key, payload, headers, attempts, available_at,"+
		" created_at) SELECT part, topic, msg_key, tag, sharding_key, payload, headers, 0, now(), now()"+
		" FROM d ORDER BY id", pgIntArray(p.IDs))
	if err != nil {
		return 0, interpretError(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (d postgresDialect) OutboxDeadDelete(ctx context.Context, db DBTX, p *OutboxDeadDeleteParams) (int64, error) {
	if len(p.IDs) == 0 {
		return 0, nil
	}
	t, err := d.QuoteIdent(p.DeadTable)
	if err != nil {
		return 0, err
	}
	res, err := db.ExecContext(ctx, "DELETE FROM "+t+" WHERE id = ANY($1::bigint[])", pgIntArray(p.IDs))
	if err != nil {
		return 0, interpretError(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// pgxConner is what pgx's database/sql driver connection (*stdlib.Conn) offers: its native connection, which
// can wait for notifications while idle. lib/pq only reads notifications while a query runs, so it gets none.
type pgxConner interface{ Conn() *pgx.Conn }

func (postgresDialect) OutboxListen(ctx context.Context, conn *sql.Conn, p *OutboxListenParams) (OutboxListener, error) {
	if err := checkIdentPart(p.Channel); err != nil {
		return nil, fmt.Errorf("%w: channel %q: %s", ErrInvalidIdent, p.Channel, err)
	}
	isPgx := false
	if err := conn.Raw(func(dc any) error { _, isPgx = dc.(pgxConner); return nil }); err != nil {
		return nil, interpretError(err)
	}
	if !isPgx {
		return nil, fmt.Errorf("%w: only pgx's driver receives notifications on an idle connection", ErrNotifyUnsupported)
	}
	if _, err := conn.ExecContext(ctx, `LISTEN "`+p.Channel+`"`); err != nil {
		return nil, interpretError(err)
	}
	return pgxListener{conn: conn}, nil
}

type pgxListener struct{ conn *sql.Conn }

func (l pgxListener) Wait(ctx context.Context) error {
	return l.conn.Raw(func(dc any) error {
		_, err := dc.(pgxConner).Conn().WaitForNotification(ctx)
		return interpretError(err)
	})
}

// pgText removes NUL bytes, which PostgreSQL text cannot hold (error strings may carry binary broker replies).
func pgText(s string) string { return strings.ReplaceAll(s, "\x00", "") }
