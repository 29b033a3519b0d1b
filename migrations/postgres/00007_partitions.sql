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
-- DEFAULT partition takes the rows of buckets whose partition was not created in time.
--
-- A new installation (migrations.Up with migrations.WithPartitioned on an empty database) starts partitioned;
-- an existing one keeps its tables and converts with `txbox partitions convert`.

-- +goose Up
CREATE TABLE {{table "partitions"}} (
    name        TEXT PRIMARY KEY,
    mode        SMALLINT    NOT NULL CHECK (mode IN (0, 1, 2)),
    period_s    BIGINT      NULL CHECK (period_s > 0),
    retention_s BIGINT      NULL CHECK (retention_s > 0),
    changed_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE {{table "inbox_keys"}} (
    consumer    TEXT COLLATE "C" NOT NULL,
    msg_key     TEXT COLLATE "C" NOT NULL,
    bucket      BIGINT      NOT NULL,
    fingerprint BYTEA       NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    -- TRUE while the message sits in the inbox dead-letter table (as in <prefix>_inbox).
    parked      BOOLEAN     NOT NULL DEFAULT FALSE,
    PRIMARY KEY (consumer, msg_key, bucket),
    CHECK (octet_length(msg_key) BETWEEN 1 AND 512),
    CHECK (octet_length(consumer) BETWEEN 1 AND 128)
) PARTITION BY RANGE (bucket);
-- Parked keys are carried into a live partition before theirs is dropped; this finds them without a scan.
CREATE INDEX {{index "inbox_keys_parked"}} ON {{table "inbox_keys"}} (consumer, msg_key) WHERE parked;
CREATE TABLE {{partition "inbox_keys" "default"}} PARTITION OF {{table "inbox_keys"}} DEFAULT;

-- The claim of the partitioned layout, one round trip: the key looked up over the live buckets (and in the
-- unpartitioned table while it still holds keys), then, for a new key, recorded in the claim's bucket and, within
-- the window of the next boundary, the next ones. A function, not one statement with CTEs: PL/pgSQL keeps its
-- plans for the session, where lib/pq plans an unnamed statement over every partition at every call (measured:
-- claims alone 1.7-2k/s as a CTE, 3.1-3.3k/s as this function with lib/pq; pgx, which keeps prepared statements,
-- about even). Each statement takes its own snapshot (READ COMMITTED): the look-up sees keys committed before it;
-- a concurrent uncommitted insert of the key in one of the buckets makes ON CONFLICT DO NOTHING wait and then skip
-- the row, and fewer rows than buckets is read as "recorded meanwhile" by the caller.
-- +goose StatementBegin
CREATE FUNCTION {{table "inbox_claim"}} (c TEXT, k TEXT, fp BYTEA, at_ TIMESTAMPTZ, period_s BIGINT,
    window_us BIGINT, retention_s BIGINT, park BOOLEAN, legacy BOOLEAN,
    OUT inserted BOOLEAN, OUT fingerprint BYTEA, OUT parked BOOLEAN)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    t  TIMESTAMPTZ := COALESCE(at_, statement_timestamp());
    lo BIGINT := floor(extract(epoch FROM t) / period_s);
    hi BIGINT := floor(extract(epoch FROM t + window_us * interval '1 microsecond') / period_s);
    n  BIGINT;
BEGIN
    SELECT r.fingerprint, r.parked INTO fingerprint, parked FROM {{table "inbox_keys"}} AS r
        WHERE r.consumer = c AND r.msg_key = k
        AND r.bucket BETWEEN floor(extract(epoch FROM t - retention_s * interval '1 second') / period_s) AND hi
        LIMIT 1;
    IF NOT FOUND AND legacy THEN
        SELECT r.fingerprint, r.parked INTO fingerprint, parked FROM {{table "inbox"}} AS r
            WHERE r.consumer = c AND r.msg_key = k;
    END IF;
    IF fingerprint IS NOT NULL THEN
        inserted := FALSE;
        RETURN;
    END IF;
    INSERT INTO {{table "inbox_keys"}} (consumer, msg_key, bucket, fingerprint, received_at, parked)
        SELECT c, k, g, fp, t, park FROM generate_series(lo, hi) AS g ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    inserted := n = hi - lo + 1;
END
$$;
-- +goose StatementEnd

INSERT INTO {{table "partitions"}} (name, mode, changed_at) VALUES
    ('inbox_keys', {{if .Partitioned}}2{{else}}0{{end}}, now()),
    ('outbox_published', {{if .Partitioned}}2{{else}}0{{end}}, now());
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
    published_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX {{index "outbox_published_at"}} ON {{table "outbox_published"}} (published_at);
CREATE INDEX {{index "outbox_published_key"}} ON {{table "outbox_published"}} (msg_key);
{{end}}
DROP FUNCTION {{table "inbox_claim"}};
DROP TABLE {{table "inbox_keys"}};
DROP TABLE {{table "partitions"}};
