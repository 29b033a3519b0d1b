package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/txbox/txbox/dialect"
)

// PostgreSQL partitions are tables of the parent's schema named <table>_b<first bucket>, plus the DEFAULT
// partition <table>_default that migration 00007 creates. Bounds are read back from the catalog.

// pgBound turns a partition bound as pg_get_expr prints it ('20787' or '2026-11-30 05:30:00+05:30') into a
// bucket: the keys table is partitioned by bucket, the published table by published_at.
func (s *postgresStore) pgBound(table PartitionedTable, expr string) string {
	v := "trim(both '''' FROM " + expr + ")"
	if table == PublishedTable {
		return "floor(extract(epoch FROM " + v + "::timestamptz) / $2)::bigint"
	}
	return v + "::bigint"
}

func (s *postgresStore) partitionedTable(table PartitionedTable) (name, quotedName string) {
	if table == PublishedTable {
		return s.t.OutboxPublished, s.q.outboxPublished
	}
	return s.t.InboxKeys, s.q.inboxKeys
}

// qualify puts a partition's name in its parent's schema.
func (s *sqlStore) qualify(name string) (string, error) {
	if schema := s.t.Schema(); schema != "" {
		name = schema + "." + name
	}
	return s.d.QuoteIdent(name)
}

func (s *postgresStore) PartitionList(ctx context.Context, db DBTX, table PartitionedTable, period time.Duration) ([]Partition, error) {
	_, qt := s.partitionedTable(table)
	q := "SELECT c.relname, b.bound = 'DEFAULT', " + s.pgBound(table, "m[1]") + ", " + s.pgBound(table, "m[2]") +
		" FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid" +
		" CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) AS b" +
		" LEFT JOIN LATERAL regexp_match(b.bound, 'FROM \\((.*)\\) TO \\((.*)\\)') AS m ON TRUE" +
		" WHERE i.inhparent = to_regclass($1)"
	args := []any{qt}
	if table == PublishedTable {
		args = append(args, max(int64(period/time.Second), 1))
	}
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap("list partitions of "+string(table), s.interpret(err))
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		var p Partition
		var lo, hi sql.NullInt64
		if err := rows.Scan(&p.Name, &p.CatchAll, &lo, &hi); err != nil {
			return nil, wrap("list partitions of "+string(table), s.interpret(err))
		}
		p.Lo, p.Hi = lo.Int64, hi.Int64
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list partitions of "+string(table), s.interpret(err))
	}
	sortPartitions(out)
	return out, nil
}

// pgBucketExpr is the bucket of a row of table, for statements on the catch-all ($1: the period in seconds).
func pgBucketExpr(table PartitionedTable) string {
	if table == PublishedTable {
		return "floor(extract(epoch FROM published_at) / $1)::bigint"
	}
	return "bucket"
}

func (s *postgresStore) PartitionCatchAllRows(ctx context.Context, db DBTX, table PartitionedTable, period time.Duration) (int64, int64, int64, error) {
	name, _ := s.partitionedTable(table)
	def, err := s.qualify(name + "_default")
	if err != nil {
		return 0, 0, 0, err
	}
	b := pgBucketExpr(table)
	var args []any
	if table == PublishedTable {
		args = append(args, max(int64(period/time.Second), 1))
	}
	var n, lo, hi int64
	err = db.QueryRowContext(ctx, "SELECT count(*), COALESCE(min("+b+"), 0), COALESCE(max("+b+"), 0) FROM "+def,
		args...).Scan(&n, &lo, &hi)
	return n, lo, hi, wrap("count rows of "+def, s.interpret(err))
}

// pgBoundLiteral renders the first value of bucket b as a partition bound.
func pgBoundLiteral(table PartitionedTable, b int64, period time.Duration) string {
	if table == PublishedTable {
		return "'" + BucketStart(b, period).Format("2006-01-02 15:04:05.999999") + "+00'"
	}
	return strconv.FormatInt(b, 10)
}

// PartitionCreate makes each partition in a transaction of its own, which first locks the parent table
// exclusively: a new table, the rows the DEFAULT partition holds for its bucket moved into it, then attached.
// The lock matters when rows move: attaching takes only a weak lock of the parent, and a claim planned before
// the attach but run after its commit would look in neither the DEFAULT partition (rows gone) nor the new one
// (not in its plan). Under the lock, claims wait for the commit and then plan with the new partition. The wait
// is short while the DEFAULT partition is empty, as it is when partitions are made ahead of time; moving rows
// (after partitions were missing) holds claims for as long as the move takes.
func (s *postgresStore) PartitionCreate(ctx context.Context, conn *sql.Conn, table PartitionedTable, period time.Duration, cuts []int64) error {
	name, qt := s.partitionedTable(table)
	def, err := s.qualify(name + "_default")
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(cuts); i++ {
		part, err := s.qualify(partitionName(name, cuts[i]))
		if err != nil {
			return err
		}
		from, to := pgBoundLiteral(table, cuts[i], period), pgBoundLiteral(table, cuts[i+1], period)
		in := "bucket >= " + from + " AND bucket < " + to
		if table == PublishedTable {
			in = "published_at >= " + from + " AND published_at < " + to
		}
		stmts := []string{
			"LOCK TABLE " + qt + " IN ACCESS EXCLUSIVE MODE",
			"CREATE TABLE " + part + " (LIKE " + qt + " INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
			"WITH m AS (DELETE FROM " + def + " WHERE " + in + " RETURNING *) INSERT INTO " + part + " SELECT * FROM m",
			"ALTER TABLE " + qt + " ATTACH PARTITION " + part + " FOR VALUES FROM (" + from + ") TO (" + to + ")",
		}
		if err := s.inTx(ctx, conn, stmts); err != nil {
			return fmt.Errorf("create partition %s: %w", part, err)
		}
	}
	return nil
}

// inTx runs stmts in one transaction on conn.
func (s *sqlStore) inTx(ctx context.Context, conn *sql.Conn, stmts []string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return s.interpret(err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return s.interpret(err)
		}
	}
	return s.interpret(tx.Commit())
}

func (s *postgresStore) PartitionDrop(ctx context.Context, conn *sql.Conn, table PartitionedTable, p Partition) error {
	if p.CatchAll {
		return fmt.Errorf("drop partition %s: it is the catch-all", p.Name)
	}
	part, err := s.qualify(p.Name)
	if err != nil {
		return err
	}
	_, qt := s.partitionedTable(table)
	// The parent first, as claims lock it: taking the partition first could deadlock with a claim that holds
	// the parent and reads the partition.
	if err := s.inTx(ctx, conn, []string{"LOCK TABLE " + qt + " IN ACCESS EXCLUSIVE MODE", "DROP TABLE " + part}); err != nil {
		return fmt.Errorf("drop partition %s: %w", part, err)
	}
	return nil
}

func (s *postgresStore) PartitionCarryParked(ctx context.Context, tx DBTX, p Partition, to int64) (int, error) {
	part, err := s.qualify(p.Name)
	if err != nil {
		return 0, err
	}
	// FOR UPDATE re-reads each row's latest version: a key unparked meanwhile (parked = FALSE) is skipped; one
	// unparked after this commits finds the copy (unpark and settle lock, then change every row of the key).
	q := "WITH c AS (SELECT consumer, msg_key, fingerprint, received_at FROM " + part + " WHERE parked FOR UPDATE)" +
		" INSERT INTO " + s.q.inboxKeys + " (consumer, msg_key, bucket, fingerprint, received_at, parked)" +
		" SELECT consumer, msg_key, $1, fingerprint, received_at, TRUE FROM c ON CONFLICT DO NOTHING"
	return s.execCount(ctx, tx, "carry parked keys of "+part, q, to)
}

func (s *postgresStore) PartitionPrepareDDL(ctx context.Context, conn *sql.Conn, lockWait time.Duration) error {
	ms := max(lockWait.Milliseconds(), 1)
	_, err := conn.ExecContext(ctx, "SET lock_timeout = "+strconv.FormatInt(ms, 10))
	return s.interpret(err)
}

// postgresKeysSQL renders the statements of the partitioned inbox keys. The claim is the function
// <prefix>_inbox_keys_claim (migration 00007): see there why.
func postgresKeysSQL(q quoted, t dialect.Tables) keysSQL {
	fn, _ := dialect.Postgres.QuoteIdent(t.InboxKeys + "_claim")
	claim := "SELECT inserted, fingerprint, parked FROM " + fn + " ($1, $2, $3, $4::timestamptz, $5, $6, $7, $8, $9)"
	at := "COALESCE($4::timestamptz, statement_timestamp())"
	lo := "floor(extract(epoch FROM " + at + ") / $5)::bigint"
	hi := "floor(extract(epoch FROM " + at + " + $6 * interval '1 microsecond') / $5)::bigint"
	legacy := "SELECT fingerprint, parked FROM " + q.inbox + " WHERE consumer = $1 AND msg_key = $2"
	read := "SELECT fingerprint, parked FROM " + q.inboxKeys + " WHERE consumer = $1 AND msg_key = $2"
	return keysSQL{
		claim:      claim,
		read:       "(" + read + " ORDER BY bucket DESC LIMIT 1)",
		readLegacy: "(" + read + " ORDER BY bucket DESC LIMIT 1) UNION ALL (" + legacy + ") LIMIT 1",
		lock:       "SELECT parked FROM " + q.inboxKeys + " WHERE consumer = $1 AND msg_key = $2 FOR UPDATE",
		lockLegacy: "SELECT parked FROM " + q.inbox + " WHERE consumer = $1 AND msg_key = $2 FOR UPDATE",
		unparkAll:  "UPDATE " + q.inboxKeys + " SET parked = FALSE WHERE consumer = $1 AND msg_key = $2",
		// A settled key is recorded afresh, now: it is kept for Retention from here.
		record: "INSERT INTO " + q.inboxKeys + " (consumer, msg_key, bucket, fingerprint, received_at)" +
			" SELECT $1, $2, g, $3, " + at + " FROM generate_series(" + lo + ", " + hi + ") AS g" +
			" ON CONFLICT (consumer, msg_key, bucket) DO UPDATE SET parked = FALSE, received_at = EXCLUDED.received_at",
		unparkLegacy: "UPDATE " + q.inbox + " SET parked = FALSE, received_at = now() WHERE consumer = $1 AND msg_key = $2",
		deleteParked: "DELETE FROM " + q.inboxKeys + " WHERE consumer = $1 AND msg_key = $2 AND parked",
		check:        checkColumns("consumer, msg_key, bucket, fingerprint, received_at, parked", q.inboxKeys, "FALSE"),
	}
}

// PublishedSwap: the old table and its indexes are renamed out of the way and the partitioned table created
// under the name, in one transaction: a relay's statement waits for it and then writes the new table.
func (s *postgresStore) PublishedSwap(ctx context.Context, conn *sql.Conn) error {
	old, err := s.oldPublished()
	if err != nil {
		return err
	}
	idx := func(n string) string { q, _ := s.qualify(s.t.Base() + "_" + n); return q }
	plain := func(n string) string { q, _ := s.d.QuoteIdent(s.t.Base() + "_" + n); return q }
	def, err := s.qualify(s.t.OutboxPublished + "_default")
	if err != nil {
		return err
	}
	qt := s.q.outboxPublished
	return wrap("swap in the partitioned published table", s.inTx(ctx, conn, []string{
		"ALTER TABLE " + qt + " RENAME TO " + plainName(old),
		"ALTER INDEX " + idx("outbox_published_at") + " RENAME TO " + plain("outbox_published_at_old"),
		"ALTER INDEX " + idx("outbox_published_key") + " RENAME TO " + plain("outbox_published_key_old"),
		"CREATE TABLE " + qt + " (id BIGINT NOT NULL, part SMALLINT NOT NULL, topic TEXT NOT NULL," +
			" msg_key TEXT COLLATE \"C\" NOT NULL, tag TEXT NOT NULL DEFAULT '', sharding_key TEXT COLLATE \"C\" NOT NULL DEFAULT ''," +
			" payload BYTEA NOT NULL, headers JSONB NULL, attempts INT NOT NULL, created_at TIMESTAMPTZ NOT NULL," +
			" published_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id, published_at)) PARTITION BY RANGE (published_at)",
		"CREATE INDEX " + plain("outbox_published_key") + " ON " + qt + " (msg_key)",
		"CREATE TABLE " + def + " PARTITION OF " + qt + " DEFAULT",
		"UPDATE " + s.q.partitions + " SET mode = 2, changed_at = clock_timestamp() WHERE name = 'outbox_published'",
	}))
}

// plainName is the last part of a quoted, possibly qualified name (RENAME TO takes no schema).
func plainName(quoted string) string {
	if i := strings.LastIndexByte(quoted, '.'); i >= 0 {
		return quoted[i+1:]
	}
	return quoted
}
