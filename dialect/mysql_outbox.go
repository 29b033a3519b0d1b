package dialect

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MariaDB plans "DELETE ... WHERE id IN (...)" as a full scan when its statistics say the table is small (the
// outbox's steady state), and that scan locks rows other relays claimed with SKIP LOCKED: deadlocks and double
// publishing. Every statement that touches claimed rows therefore joins a JSON_TABLE of (part, id) pairs to the
// outbox with STRAIGHT_JOIN, which forces one primary-key lookup per row. The outbox is clustered on
// (part, id): unkeyed claims and each keyed partition are then primary-key range scans that touch no other
// rows (a scan that steps over rows keeps their locks on MariaDB, even in READ COMMITTED).
const mysqlIDsTable = "JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) AS j"

const mysqlRefsTable = "JSON_TABLE(?, '$[*]' COLUMNS (p INT PATH '$.p', id BIGINT PATH '$.id', us BIGINT PATH '$.us'," +
	" err TEXT PATH '$.err')) AS j"

type mysqlRefJSON struct {
	P   int    `json:"p"`
	ID  int64  `json:"id"`
	US  int64  `json:"us,omitempty"`
	Err string `json:"err,omitempty"`
}

func mysqlNewTime() sql.Scanner           { return &mysqlTime{} }
func mysqlTimeOf(s sql.Scanner) time.Time { return s.(*mysqlTime).Time }

func (d mysqlDialect) OutboxInsert(ctx context.Context, db DBTX, p *OutboxInsertParams) error {
	if len(p.Rows) == 0 {
		return nil
	}
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + t + " (part, topic, msg_key, tag, sharding_key, payload, headers, attempts, " +
		"available_at, created_at) VALUES ")
	args := make([]any, 0, len(p.Rows)*8)
	for i, r := range p.Rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, 0, COALESCE(?, UTC_TIMESTAMP(6)), UTC_TIMESTAMP(6))")
		var at any
		if !r.DeliverAt.IsZero() {
			at = mysqlTimeArg(r.DeliverAt)
		}
		var headers any
		if r.Headers != nil {
			headers = r.Headers
		}
		payload := r.Payload
		if payload == nil {
			payload = []byte{}
		}
		args = append(args, r.Partition, r.Topic, r.Key, r.Tag, r.ShardingKey, payload, headers, at)
	}
	if _, err := db.ExecContext(ctx, b.String(), args...); err != nil {
		return interpretError(err)
	}
	return nil
}

func (mysqlDialect) OutboxPrepareConn(ctx context.Context, conn *sql.Conn) error {
	_, err := conn.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
	return interpretError(err)
}

// GROUP BY on the leading column of the primary key (part, id) is a loose index scan: one dive per partition.
func (d mysqlDialect) OutboxKeyedPartitions(ctx context.Context, db DBTX, p *OutboxKeyedPartitionsParams) ([]int, error) {
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT part FROM "+t+" FORCE INDEX (PRIMARY) WHERE part >= 0 GROUP BY part ORDER BY part")
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := scanInts(rows)
	return out, interpretError(err)
}

// GET_LOCK names are server-wide and at most 64 characters: the name hashes database and table.
const mysqlLockName = "CONCAT('txbox_outbox:', LEFT(MD5(CONCAT(COALESCE(DATABASE(), ''), '.', ?)), 24), ':', j.p)"

func (mysqlDialect) OutboxLockPartitions(ctx context.Context, conn *sql.Conn, p *OutboxPartitionsParams) ([]int, error) {
	if len(p.Partitions) == 0 {
		return nil, nil
	}
	ps, _ := json.Marshal(p.Partitions)
	rows, err := conn.QueryContext(ctx, "SELECT j.p FROM JSON_TABLE(?, '$[*]' COLUMNS (p INT PATH '$')) AS j "+
		"WHERE GET_LOCK("+mysqlLockName+", 0) = 1", string(ps), p.Table)
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

func (mysqlDialect) OutboxUnlockPartitions(ctx context.Context, conn *sql.Conn, _ *OutboxPartitionsParams) error {
	_, err := conn.ExecContext(ctx, "DO RELEASE_ALL_LOCKS()")
	return interpretError(err)
}

func (d mysqlDialect) OutboxSelectKeyed(ctx context.Context, tx DBTX, p *OutboxSelectKeyedParams) ([]OutboxRow, error) {
	if len(p.Partitions) == 0 {
		return nil, nil
	}
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return nil, err
	}
	// One branch per partition, each a short primary-key range scan: an IN list would make MySQL read and
	// sort every row of the owned partitions.
	var b strings.Builder
	args := make([]any, 0, 2*len(p.Partitions))
	for i, part := range p.Partitions {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString("(SELECT " + prefixCols("o.", outboxCols) + " FROM " + t + " AS o FORCE INDEX (PRIMARY)" +
			" WHERE o.part = ? AND o.part >= 0 AND o.available_at <= UTC_TIMESTAMP(6) AND NOT EXISTS (SELECT 1 FROM " + t + " AS b" +
			" WHERE b.sharding_key = o.sharding_key AND b.available_at > UTC_TIMESTAMP(6) AND b.id < o.id)" +
			" ORDER BY o.part, o.id LIMIT ?)")
		args = append(args, part, p.PerPartition)
	}
	rows, err := tx.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := scanOutboxRows(rows, p.PerPartition*len(p.Partitions), mysqlNewTime, mysqlTimeOf)
	return out, interpretError(err)
}

func (d mysqlDialect) OutboxClaimUnkeyed(ctx context.Context, tx DBTX, p *OutboxClaimUnkeyedParams) ([]OutboxRow, error) {
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return nil, err
	}
	// A primary-key range of partition -1, from a remembered id: the scan seeks past the delete-marked rows
	// drained batches leave at the head instead of stepping over them every time, and never touches keyed
	// rows. Stepping over those (as a scan of an id-only key would), MariaDB keeps their locks even in READ
	// COMMITTED and, despite SKIP LOCKED, waited for keyed rows other relays were deleting: measured deadlocks.
	rows, err := tx.QueryContext(ctx, "SELECT "+outboxCols+" FROM "+t+" FORCE INDEX (PRIMARY) WHERE part = -1 AND id > ?"+
		" AND available_at <= UTC_TIMESTAMP(6) ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED", p.AfterID, p.Limit)
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := scanOutboxRows(rows, p.Limit, mysqlNewTime, mysqlTimeOf)
	return out, interpretError(err)
}

func (d mysqlDialect) OutboxDelete(ctx context.Context, tx DBTX, p *OutboxDeleteParams) (int64, error) {
	if len(p.Rows) == 0 {
		return 0, nil
	}
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return 0, err
	}
	// The refs as JSON, built by hand: json.Marshal's reflection was a tenth of a drained batch's client time.
	data := make([]byte, 0, 32*len(p.Rows))
	data = append(data, '[')
	for i, r := range p.Rows {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, `{"p":`...)
		data = strconv.AppendInt(data, int64(r.Partition), 10)
		data = append(data, `,"id":`...)
		data = strconv.AppendInt(data, r.ID, 10)
		data = append(data, '}')
	}
	data = append(data, ']')
	if p.PublishedTable != "" {
		pt, err := d.QuoteIdent(p.PublishedTable)
		if err != nil {
			return 0, err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO "+pt+" (id, part, topic, msg_key, tag, sharding_key, payload, headers,"+
			" attempts, created_at, published_at) SELECT o.id, o.part, o.topic, o.msg_key, o.tag, o.sharding_key, o.payload,"+
			" o.headers, o.attempts, o.created_at, UTC_TIMESTAMP(6) FROM "+mysqlRefsTable+" STRAIGHT_JOIN "+t+
			" AS o ON o.part = j.p AND o.id = j.id", string(data))
		if err != nil {
			return 0, interpretError(err)
		}
	}
	res, err := tx.ExecContext(ctx, "DELETE o FROM "+mysqlRefsTable+" STRAIGHT_JOIN "+t+" AS o ON o.part = j.p AND o.id = j.id",
		string(data))
	if err != nil {
		return 0, interpretError(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (d mysqlDialect) OutboxRetry(ctx context.Context, tx DBTX, p *OutboxRetryParams) error {
	if len(p.Rows) == 0 {
		return nil
	}
	t, err := d.QuoteIdent(p.Table)
	if err != nil {
		return err
	}
	js := make([]mysqlRefJSON, len(p.Rows))
	for i, r := range p.Rows {
		js[i] = mysqlRefJSON{P: r.Partition, ID: r.ID, US: r.Delay.Microseconds(), Err: clipError(r.Error)}
	}
	data, _ := json.Marshal(js)
	_, err = tx.ExecContext(ctx, "UPDATE "+mysqlRefsTable+" STRAIGHT_JOIN "+t+" AS o ON o.part = j.p AND o.id = j.id"+
		" SET o.attempts = o.attempts + 1, o.available_at = UTC_TIMESTAMP(6) + INTERVAL j.us MICROSECOND,"+
		" o.last_error = j.err", string(data))
	return interpretError(err)
}

// OutboxPurgePublished is one statement: a range of the published_at index, oldest first, n rows.
func (d mysqlDialect) OutboxPurgePublished(ctx context.Context, db DBTX, p *OutboxPurgePublishedParams) (int, error) {
	t, err := d.QuoteIdent(p.PublishedTable)
	if err != nil {
		return 0, err
	}
	return execCount(ctx, db, "purge published outbox rows", "DELETE FROM "+t+
		" WHERE published_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND ORDER BY published_at LIMIT ?",
		p.OlderThan.Microseconds(), p.Limit)
}

func (d mysqlDialect) OutboxBury(ctx context.Context, tx DBTX, p *OutboxBuryParams) error {
	if len(p.Rows) == 0 {
		return nil
	}
	q, err := quoteTables(d.QuoteIdent, p.Table, p.DeadTable)
	if err != nil {
		return err
	}
	js := make([]mysqlRefJSON, len(p.Rows))
	refs := make([]OutboxRowRef, len(p.Rows))
	for i, r := range p.Rows {
		js[i] = mysqlRefJSON{P: r.Partition, ID: r.ID, Err: clipError(r.Error)}
		refs[i] = OutboxRowRef{ID: r.ID, Partition: r.Partition}
	}
	data, _ := json.Marshal(js)
	_, err = tx.ExecContext(ctx, "INSERT INTO "+q[1]+" (id, part, topic, msg_key, tag, sharding_key, payload, headers,"+
		" attempts, created_at, dead_at, last_error)"+
		" SELECT o.id, o.part, o.topic, o.msg_key, o.tag, o.sharding_key, o.payload, o.headers, o.attempts + 1,"+
		" o.created_at, UTC_TIMESTAMP(6), j.err"+
		" FROM "+mysqlRefsTable+" STRAIGHT_JOIN "+q[0]+" AS o ON o.part = j.p AND o.id = j.id", string(data))
	if err != nil {
		return interpretError(err)
	}
	_, err = d.OutboxDelete(ctx, tx, &OutboxDeleteParams{Table: p.Table, Rows: refs})
	return err
}

func (d mysqlDialect) OutboxDeadList(ctx context.Context, db DBTX, p *OutboxDeadListParams) ([]OutboxDeadRow, error) {
	t, err := d.QuoteIdent(p.DeadTable)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT "+outboxDeadCols+" FROM "+t+" WHERE id > ? ORDER BY id LIMIT ?",
		p.AfterID, p.Limit)
	if err != nil {
		return nil, interpretError(err)
	}
	out, err := scanOutboxDeadRows(rows, mysqlNewTime, mysqlTimeOf)
	return out, interpretError(err)
}

func (d mysqlDialect) OutboxDeadRequeue(ctx context.Context, tx DBTX, p *OutboxDeadRequeueParams) (int64, error) {
	if len(p.IDs) == 0 {
		return 0, nil
	}
	q, err := quoteTables(d.QuoteIdent, p.Table, p.DeadTable)
	if err != nil {
		return 0, err
	}
	ids, _ := json.Marshal(p.IDs)
	// Lock the dead letters first so that two concurrent requeues cannot both copy a row.
	rows, err := tx.QueryContext(ctx, "SELECT d.id FROM "+mysqlIDsTable+" STRAIGHT_JOIN "+q[1]+
		" AS d ON d.id = j.id ORDER BY d.id FOR UPDATE", string(ids))
	if err != nil {
		return 0, interpretError(err)
	}
	var locked []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, interpretError(err)
		}
		locked = append(locked, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, interpretError(err)
	}
	if len(locked) == 0 {
		return 0, nil
	}
	lj, _ := json.Marshal(locked)
	res, err := tx.ExecContext(ctx, "INSERT INTO "+q[0]+" (part, topic, msg_key, tag, sharding_key, payload, headers,"+
		" attempts, available_at, created_at)"+
		" SELECT d.part, d.topic, d.msg_key, d.tag, d.sharding_key, d.payload, d.headers, 0, UTC_TIMESTAMP(6),"+
		" UTC_TIMESTAMP(6) FROM "+mysqlIDsTable+" STRAIGHT_JOIN "+q[1]+" AS d ON d.id = j.id ORDER BY d.id", string(lj))
	if err != nil {
		return 0, interpretError(err)
	}
	n, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, "DELETE d FROM "+mysqlIDsTable+" STRAIGHT_JOIN "+q[1]+" AS d ON d.id = j.id",
		string(lj)); err != nil {
		return 0, interpretError(err)
	}
	return n, nil
}

func (d mysqlDialect) OutboxDeadDelete(ctx context.Context, db DBTX, p *OutboxDeadDeleteParams) (int64, error) {
	if len(p.IDs) == 0 {
		return 0, nil
	}
	t, err := d.QuoteIdent(p.DeadTable)
	if err != nil {
		return 0, err
	}
	ids, _ := json.Marshal(p.IDs)
	res, err := db.ExecContext(ctx, "DELETE d FROM "+mysqlIDsTable+" STRAIGHT_JOIN "+t+" AS d ON d.id = j.id", string(ids))
	if err != nil {
		return 0, interpretError(err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func (mysqlDialect) OutboxListen(context.Context, *sql.Conn, *OutboxListenParams) (OutboxListener, error) {
	return nil, fmt.Errorf("%w: MySQL has no LISTEN/NOTIFY; relays poll", ErrNotifyUnsupported)
}

// prefixCols qualifies a comma-separated column list with a table alias.
func prefixCols(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, c := range parts {
		parts[i] = prefix + c
	}
	return strings.Join(parts, ", ")
}
