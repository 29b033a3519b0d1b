package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/txbox/txbox/dialect"
)

// MySQL partitions are RANGE partitions named b<first bucket>, each holding the buckets below its bound and at
// or above the previous one's, and pmax (VALUES LESS THAN MAXVALUE), the catch-all that migration 00007
// creates. New partitions are split off pmax; bounds are read from information_schema.PARTITIONS.

const mysqlCatchAll = "pmax"

func (s *mysqlStore) partitionedTable(table PartitionedTable) (name, quotedName string) {
	if table == PublishedTable {
		return s.t.OutboxPublished, s.q.outboxPublished
	}
	return s.t.InboxKeys, s.q.inboxKeys
}

// unqualified is a table name without its schema.
func unqualified(name string) string {
	if _, n, ok := strings.Cut(name, "."); ok {
		return n
	}
	return name
}

func (s *mysqlStore) PartitionList(ctx context.Context, db DBTX, table PartitionedTable, period time.Duration) ([]Partition, error) {
	name, _ := s.partitionedTable(table)
	var schema any
	if sc := s.t.Schema(); sc != "" {
		schema = sc
	}
	rows, err := db.QueryContext(ctx, "SELECT PARTITION_NAME, PARTITION_DESCRIPTION FROM information_schema.PARTITIONS"+
		" WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL"+
		" ORDER BY PARTITION_ORDINAL_POSITION", schema, unqualified(name))
	if err != nil {
		return nil, wrap("list partitions of "+string(table), s.interpret(err))
	}
	defer rows.Close()
	var out []Partition
	lo := int64(math.MinInt64)
	for rows.Next() {
		var p Partition
		var desc string
		if err := rows.Scan(&p.Name, &desc); err != nil {
			return nil, wrap("list partitions of "+string(table), s.interpret(err))
		}
		if desc == "MAXVALUE" || p.Name == mysqlCatchAll {
			p.CatchAll, p.Lo, p.Hi = true, lo, math.MaxInt64
		} else {
			hi, err := mysqlBound(table, desc, period)
			if err != nil {
				return nil, fmt.Errorf("list partitions of %s: partition %s: %w", table, p.Name, err)
			}
			p.Lo, p.Hi = lo, hi
			lo = hi
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list partitions of "+string(table), s.interpret(err))
	}
	return out, nil
}

// mysqlBound reads a VALUES LESS THAN bound: a bucket, or for the published table a quoted UTC datetime.
func mysqlBound(table PartitionedTable, desc string, period time.Duration) (int64, error) {
	if table != PublishedTable {
		return strconv.ParseInt(desc, 10, 64)
	}
	t, err := time.Parse("2006-01-02 15:04:05", strings.Trim(desc, "'"))
	if err != nil {
		return 0, err
	}
	return BucketOf(t, period), nil
}

func mysqlBoundLiteral(table PartitionedTable, b int64, period time.Duration) string {
	if table == PublishedTable {
		return "'" + BucketStart(b, period).Format("2006-01-02 15:04:05") + "'"
	}
	return strconv.FormatInt(b, 10)
}

func (s *mysqlStore) PartitionCatchAllRows(ctx context.Context, db DBTX, table PartitionedTable, period time.Duration) (int64, int64, int64, error) {
	_, qt := s.partitionedTable(table)
	b := "bucket"
	if table == PublishedTable {
		b = "FLOOR(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', published_at) / ?)"
	}
	args := []any{}
	if table == PublishedTable {
		args = []any{int64(period / time.Second), int64(period / time.Second)}
	}
	var n, lo, hi int64
	err := db.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(MIN("+b+"), 0), COALESCE(MAX("+b+"), 0) FROM "+qt+
		" PARTITION ("+mysqlCatchAll+")", args...).Scan(&n, &lo, &hi)
	return n, lo, hi, wrap("count rows of the catch-all partition of "+qt, s.interpret(err))
}

// PartitionCreate splits the partitions of buckets [lo, hi) off the MAXVALUE partition in one ALTER TABLE. A
// range can only grow at its end: the first new partition also takes every bucket between the last partition
// and lo. MySQL copies the rows the MAXVALUE partition holds for them (none while partitions are made ahead).
func (s *mysqlStore) PartitionCreate(ctx context.Context, conn *sql.Conn, table PartitionedTable, period time.Duration, cuts []int64) error {
	if len(cuts) < 2 {
		return nil
	}
	_, qt := s.partitionedTable(table)
	var b strings.Builder
	b.WriteString("ALTER TABLE " + qt + " REORGANIZE PARTITION " + mysqlCatchAll + " INTO (")
	for i := 0; i+1 < len(cuts); i++ {
		fmt.Fprintf(&b, "PARTITION b%d VALUES LESS THAN (%s), ", cuts[i], mysqlBoundLiteral(table, cuts[i+1], period))
	}
	// RANGE takes a bare MAXVALUE, RANGE COLUMNS a parenthesised one.
	maxValue := "MAXVALUE"
	if table == PublishedTable {
		maxValue = "(MAXVALUE)"
	}
	b.WriteString("PARTITION " + mysqlCatchAll + " VALUES LESS THAN " + maxValue + ")")
	if _, err := conn.ExecContext(ctx, b.String()); err != nil {
		return fmt.Errorf("create partitions [%d, %d) of %s: %w", cuts[0], cuts[len(cuts)-1], qt, s.interpret(err))
	}
	return nil
}

func (s *mysqlStore) PartitionDrop(ctx context.Context, conn *sql.Conn, table PartitionedTable, p Partition) error {
	if p.CatchAll {
		return fmt.Errorf("drop partition %s: it is the catch-all", p.Name)
	}
	_, qt := s.partitionedTable(table)
	if err := dialect.ValidateIdent(p.Name); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "ALTER TABLE "+qt+" DROP PARTITION "+p.Name); err != nil {
		return fmt.Errorf("drop partition %s of %s: %w", p.Name, qt, s.interpret(err))
	}
	return nil
}

// PartitionCarryParked finds the partition's parked keys with a plain (non-locking) read, then locks them by
// primary key, re-checking parked, and copies them: a locking scan of the whole partition would lock every key
// in it.
func (s *mysqlStore) PartitionCarryParked(ctx context.Context, tx DBTX, p Partition, to int64) (int, error) {
	if err := dialect.ValidateIdent(p.Name); err != nil {
		return 0, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT consumer, msg_key, bucket FROM "+s.q.inboxKeys+" PARTITION ("+p.Name+
		") WHERE parked = TRUE")
	if err != nil {
		return 0, wrap("find parked keys of partition "+p.Name, s.interpret(err))
	}
	type ref struct {
		C string `json:"c"`
		K string `json:"k"`
		B int64  `json:"b"`
	}
	var refs []ref
	for rows.Next() {
		var r ref
		if err := rows.Scan(&r.C, &r.K, &r.B); err != nil {
			rows.Close()
			return 0, wrap("find parked keys of partition "+p.Name, s.interpret(err))
		}
		refs = append(refs, r)
	}
	if err := errors.Join(rows.Close(), rows.Err()); err != nil {
		return 0, wrap("find parked keys of partition "+p.Name, s.interpret(err))
	}
	if len(refs) == 0 {
		return 0, nil
	}
	data, err := json.Marshal(refs) // keys are valid UTF-8 without NUL bytes: JSON carries them byte for byte
	if err != nil {
		return 0, fmt.Errorf("carry parked keys of partition %s: %w", p.Name, err)
	}
	arg := string(data)
	join := "JSON_TABLE(?, '$[*]' COLUMNS (c VARBINARY(128) PATH '$.c', k VARBINARY(512) PATH '$.k', b BIGINT PATH '$.b'))" +
		" AS j STRAIGHT_JOIN " + s.q.inboxKeys + " AS t FORCE INDEX (PRIMARY) ON t.consumer = j.c AND t.msg_key = j.k AND t.bucket = j.b"
	if _, err := tx.ExecContext(ctx, "SELECT t.msg_key FROM "+join+" WHERE t.parked = TRUE FOR UPDATE", arg); err != nil {
		return 0, wrap("lock parked keys of partition "+p.Name, s.interpret(err))
	}
	return s.execCount(ctx, tx, "carry parked keys of partition "+p.Name, "INSERT INTO "+s.q.inboxKeys+
		" (consumer, msg_key, bucket, fingerprint, received_at, parked) SELECT t.consumer, t.msg_key, ?, t.fingerprint,"+
		" t.received_at, TRUE FROM "+join+" WHERE t.parked = TRUE ON DUPLICATE KEY UPDATE parked = "+s.q.inboxKeys+".parked",
		to, arg)
}

func (s *mysqlStore) PartitionPrepareDDL(ctx context.Context, conn *sql.Conn, lockWait time.Duration) error {
	sec := max(int64(lockWait/time.Second), 1)
	_, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = "+strconv.FormatInt(sec, 10)+
		", SESSION innodb_lock_wait_timeout = "+strconv.FormatInt(sec, 10))
	return s.interpret(err)
}

// mysqlKeysSQL renders the statements of the partitioned inbox keys. The claim is the stored procedure
// <prefix>_inbox_keys_claim (migration 00007): see there why.
func mysqlKeysSQL(q quoted, t dialect.Tables) keysSQL {
	proc, _ := dialect.MySQL.QuoteIdent(t.InboxKeys + "_claim")
	claim := "CALL " + proc + " (?, ?, ?, ?, ?, ?, ?, ?, ?)"
	read := "SELECT fingerprint, parked FROM " + q.inboxKeys + " WHERE consumer = ? AND msg_key = ?"
	legacy := "SELECT fingerprint, parked FROM " + q.inbox + " WHERE consumer = ? AND msg_key = ?"
	at := "COALESCE(?, UTC_TIMESTAMP(6))"
	return keysSQL{
		claim: claim,
		// Locking reads: under REPEATABLE READ a plain read could use a snapshot older than the commit that
		// made the claim fail.
		read:         read + " ORDER BY bucket DESC LIMIT 1 LOCK IN SHARE MODE",
		readLegacy:   "(" + read + " ORDER BY bucket DESC LIMIT 1 LOCK IN SHARE MODE) UNION ALL (" + legacy + " LOCK IN SHARE MODE) LIMIT 1",
		lock:         "SELECT parked FROM " + q.inboxKeys + " WHERE consumer = ? AND msg_key = ? FOR UPDATE",
		lockLegacy:   "SELECT parked FROM " + q.inbox + " WHERE consumer = ? AND msg_key = ? FOR UPDATE",
		unparkAll:    "UPDATE " + q.inboxKeys + " SET parked = FALSE WHERE consumer = ? AND msg_key = ?",
		unparkLegacy: "UPDATE " + q.inbox + " SET parked = FALSE, received_at = UTC_TIMESTAMP(6) WHERE consumer = ? AND msg_key = ?",
		// The buckets of now and of every boundary within the window, from a recursive row source.
		record: "INSERT INTO " + q.inboxKeys + " (consumer, msg_key, bucket, fingerprint, received_at, parked)" +
			" WITH RECURSIVE x AS (SELECT ? AS c, ? AS k, ? AS fp, " + at + " AS t, ? AS p, ? AS w)," +
			" s AS (SELECT FLOOR(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', t) / (p * 1000000)) AS b FROM x" +
			" UNION ALL SELECT s.b + 1 FROM s, x WHERE s.b + 1 <= FLOOR((TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', x.t) + x.w)" +
			" / (x.p * 1000000))) SELECT x.c, x.k, s.b, x.fp, x.t, FALSE FROM s, x" +
			" ON DUPLICATE KEY UPDATE parked = FALSE, received_at = VALUES(received_at)",
		deleteParked: "DELETE FROM " + q.inboxKeys + " WHERE consumer = ? AND msg_key = ? AND parked = TRUE",
		check:        checkColumns("consumer, msg_key, bucket, fingerprint, received_at, parked", q.inboxKeys, "1 = 0"),
	}
}

// PublishedSwap creates the partitioned table under a new name and swaps it in with one RENAME TABLE, which
// MySQL runs atomically: a relay's statement sees either table, never none.
func (s *mysqlStore) PublishedSwap(ctx context.Context, conn *sql.Conn) error {
	old, err := s.oldPublished()
	if err != nil {
		return err
	}
	next, err := s.d.QuoteIdent(s.t.OutboxPublished + "_next")
	if err != nil {
		return err
	}
	key, _ := s.d.QuoteIdent(s.t.Base() + "_outbox_published_key")
	qt := s.q.outboxPublished
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + next,
		"CREATE TABLE " + next + " (id BIGINT NOT NULL, part SMALLINT NOT NULL, topic VARBINARY(255) NOT NULL," +
			" msg_key VARBINARY(512) NOT NULL, tag VARBINARY(255) NOT NULL DEFAULT '', sharding_key VARBINARY(255) NOT NULL DEFAULT ''," +
			" payload LONGBLOB NOT NULL, headers BLOB NULL, attempts INT NOT NULL, created_at DATETIME(6) NOT NULL," +
			" published_at DATETIME(6) NOT NULL, PRIMARY KEY (id, published_at), KEY " + key + " (msg_key)) ENGINE = InnoDB" +
			" PARTITION BY RANGE COLUMNS (published_at) (PARTITION " + mysqlCatchAll + " VALUES LESS THAN (MAXVALUE))",
		"RENAME TABLE " + qt + " TO " + old + ", " + next + " TO " + qt,
		"UPDATE " + s.q.partitions + " SET mode = 2, changed_at = UTC_TIMESTAMP(6) WHERE name = 'outbox_published'",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("swap in the partitioned published table: %w", s.interpret(err))
		}
	}
	return nil
}
