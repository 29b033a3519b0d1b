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
DROP TABLE {{table "inbox_keys"}};
DROP TABLE {{table "partitions"}};
