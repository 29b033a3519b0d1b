-- Time-partitioned retention (issue 14): keys and published rows are dropped a partition at a time, so that
-- retention costs the same at any size. See package inbox ("Partitioned retention") for the design.
--
-- partitions: one row per partitioned table. mode: 0 the unpartitioned table is in use (inbox: <prefix>_inbox;
-- published: a plain table), 1 the inbox converts (claims record keys in both tables), 2 partitioned. period_s
-- is the partition period P (set once, by the first process that needs it, from the retention it is given),
-- retention_s the longest retention any process declared (partitions are dropped when all their rows are
-- older than it). A partition holds the rows of one bucket, floor(epoch seconds of the database's clock / P).
--
-- inbox_keys: a key is recorded in the bucket of its claim, and also in the next bucket when the claim falls
-- within the claim window of the next boundary; uniqueness is per bucket, so the primary key carries it. The
-- MAXVALUE partition takes the rows of buckets whose partition was not created in time.
--
-- A new installation (migrations.Up with migrations.WithPartitioned on an empty database) starts partitioned;
-- an existing one keeps its tables and converts with `txbox partitions convert`.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE {{table "partitions"}} (
    name        VARBINARY(64) NOT NULL,
    mode        SMALLINT      NOT NULL,
    period_s    BIGINT        NULL,
    retention_s BIGINT        NULL,
    changed_at  DATETIME(6)   NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB;

CREATE TABLE {{table "inbox_keys"}} (
    consumer    VARBINARY(128) NOT NULL,
    msg_key     VARBINARY(512) NOT NULL,
    bucket      BIGINT         NOT NULL,
    fingerprint BINARY(32)     NOT NULL,
    received_at DATETIME(6)    NOT NULL,
    -- TRUE while the message sits in the inbox dead-letter table (as in <prefix>_inbox).
    parked      BOOLEAN        NOT NULL DEFAULT FALSE,
    PRIMARY KEY (consumer, msg_key, bucket)
) ENGINE = InnoDB
PARTITION BY RANGE (bucket) (PARTITION pmax VALUES LESS THAN MAXVALUE);

-- The claim of the partitioned layout, one round trip: a consistent (non-locking) read of the key over the live
-- buckets (and the unpartitioned table while it still holds keys), then, for a new key, the insert into the
-- claim's bucket and, within the window of the next boundary, the next ones. A plain SELECT in a procedure
-- takes no locks; the same check written as INSERT ... SELECT ... WHERE NOT EXISTS takes shared next-key locks
-- under REPEATABLE READ and made claims of neighbouring keys wait for each other (measured: 2.5 s, the first
-- transaction's length). A concurrent uncommitted insert of the key in the same bucket makes the INSERT wait on
-- the primary key and then fail with a duplicate-key error, which the caller reads as "recorded". Result:
-- inserted, and the recorded fingerprint and parked flag when not inserted.
-- +goose StatementBegin
CREATE PROCEDURE {{table "inbox_claim"}} (IN c VARBINARY(128), IN k VARBINARY(512), IN fp BINARY(32),
    IN at_ DATETIME(6), IN period_s BIGINT, IN window_us BIGINT, IN retention_s BIGINT, IN park BOOLEAN,
    IN legacy BOOLEAN)
    SQL SECURITY INVOKER
    MODIFIES SQL DATA
BEGIN
    DECLARE t DATETIME(6) DEFAULT COALESCE(at_, UTC_TIMESTAMP(6));
    DECLARE us BIGINT DEFAULT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', t);
    DECLARE b BIGINT DEFAULT FLOOR(us / (period_s * 1000000));
    DECLARE hi BIGINT DEFAULT FLOOR((us + window_us) / (period_s * 1000000));
    DECLARE f VARBINARY(32) DEFAULT NULL;
    DECLARE p BOOLEAN DEFAULT NULL;
    SELECT fingerprint, parked INTO f, p FROM {{table "inbox_keys"}}
        WHERE consumer = c AND msg_key = k
        AND bucket BETWEEN FLOOR((us - retention_s * 1000000) / (period_s * 1000000)) AND hi
        ORDER BY bucket DESC LIMIT 1;
    IF f IS NULL AND legacy THEN
        SELECT fingerprint, parked INTO f, p FROM {{table "inbox"}} WHERE consumer = c AND msg_key = k;
    END IF;
    IF f IS NOT NULL THEN
        SELECT FALSE, f, p;
    ELSE
        WHILE b <= hi DO
            INSERT INTO {{table "inbox_keys"}} (consumer, msg_key, bucket, fingerprint, received_at, parked)
                VALUES (c, k, b, fp, t, park);
            SET b = b + 1;
        END WHILE;
        SELECT TRUE, NULL, NULL;
    END IF;
END
-- +goose StatementEnd

INSERT INTO {{table "partitions"}} (name, mode, changed_at) VALUES
    ('inbox_keys', {{if .Partitioned}}2{{else}}0{{end}}, UTC_TIMESTAMP(6)),
    ('outbox_published', {{if .Partitioned}}2{{else}}0{{end}}, UTC_TIMESTAMP(6));
{{if .Partitioned}}
-- A new installation: the published table (empty, created by 00003) is made partitioned by publishing time.
DROP TABLE {{table "outbox_published"}};
{{template "published_partitioned"}}
{{end}}

-- +goose Down
{{if .Partitioned}}
DROP TABLE {{table "outbox_published"}};
CREATE TABLE {{table "outbox_published"}} (
{{template "stored_message"}}
    published_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (id),
    KEY {{index "outbox_published_at"}} (published_at),
    KEY {{index "outbox_published_key"}} (msg_key)
) ENGINE = InnoDB;
{{end}}
DROP PROCEDURE {{table "inbox_claim"}};
DROP TABLE {{table "inbox_keys"}};
DROP TABLE {{table "partitions"}};
