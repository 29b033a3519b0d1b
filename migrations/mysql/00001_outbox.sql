-- txbox outbox (MySQL 8+ / MariaDB 10.6+).
-- Text that txbox compares (keys, sharding keys) is VARBINARY: byte-for-byte equality, no case folding and no
-- PAD SPACE ("k" and "k " are different keys). Instants are UTC DATETIME(6), compared with UTC_TIMESTAMP(6).
--
-- part is hash(sharding_key) mod 64 computed at enqueue (outbox.PartitionOf), or -1 for rows without a
-- sharding key. Relays own keyed partitions through advisory locks and publish each partition in id order;
-- unkeyed rows are claimed row by row with FOR UPDATE SKIP LOCKED in primary-key order.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE {{table "outbox"}} (
    id           BIGINT         NOT NULL AUTO_INCREMENT,
    part         SMALLINT       NOT NULL,
    topic        VARBINARY(255) NOT NULL,
    msg_key      VARBINARY(512) NOT NULL,
    tag          VARBINARY(255) NOT NULL DEFAULT '',
    sharding_key VARBINARY(255) NOT NULL DEFAULT '',
    payload      LONGBLOB       NOT NULL,
    headers      BLOB           NULL,
    attempts     INT            NOT NULL DEFAULT 0,
    available_at DATETIME(6)    NOT NULL,
    created_at   DATETIME(6)    NOT NULL,
    last_error   TEXT           NULL,
    -- Clustered on (part, id): unkeyed claims (part -1) and each keyed partition are primary-key range scans
    -- in id order that never step over (and so never lock) rows of other partitions.
    PRIMARY KEY (part, id),
    -- AUTO_INCREMENT needs an index that starts with id.
    KEY {{index "outbox_id"}} (id),
    -- "Is an earlier row of this sharding key not due yet?" (a failed row holds back its key).
    KEY {{index "outbox_key_due"}} (sharding_key, available_at)
) ENGINE = InnoDB;

CREATE TABLE {{table "outbox_dead"}} (
{{template "stored_message"}}
    dead_at      DATETIME(6)    NOT NULL,
    last_error   TEXT           NULL,
    PRIMARY KEY (id),
    KEY {{index "outbox_dead_key"}} (msg_key)
) ENGINE = InnoDB;

-- +goose Down
DROP TABLE {{table "outbox_dead"}};
DROP TABLE {{table "outbox"}};
