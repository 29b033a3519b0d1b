-- txbox inbox (MySQL 8+ / MariaDB 10.6+). Keys are VARBINARY: compared byte for byte (see 00001).
-- Instants are UTC DATETIME(6), written and compared with UTC_TIMESTAMP(6).

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE {{table "inbox"}} (
    consumer    VARBINARY(128) NOT NULL,
    msg_key     VARBINARY(512) NOT NULL,
    fingerprint BINARY(32)     NOT NULL,
    received_at DATETIME(6)    NOT NULL,
    -- TRUE while the message sits in the inbox dead-letter table: deliveries are acknowledged without running the handler.
    parked      BOOLEAN        NOT NULL DEFAULT FALSE,
    PRIMARY KEY (consumer, msg_key),
    -- Purge reads a batch of keys from this index oldest first (index-only: InnoDB secondary indexes carry the
    -- primary key), then deletes them by primary key.
    KEY {{index "inbox_purge"}} (consumer, parked, received_at)
) ENGINE = InnoDB;

-- Failed attempts, counted outside the handler's (rolled back) transaction.
CREATE TABLE {{table "inbox_attempts"}} (
    consumer   VARBINARY(128) NOT NULL,
    msg_key    VARBINARY(512) NOT NULL,
    attempts   INT            NOT NULL,
    last_error TEXT CHARACTER SET utf8mb4 NULL,
    updated_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (consumer, msg_key),
    -- Purge removes counters of keys that stopped failing (a success only clears them on redeliveries).
    KEY {{index "inbox_attempts_purge"}} (consumer, updated_at)
) ENGINE = InnoDB;

CREATE TABLE {{table "inbox_dead"}} (
    id          BIGINT         NOT NULL AUTO_INCREMENT,
    consumer    VARBINARY(128) NOT NULL,
    msg_key     VARBINARY(512) NOT NULL,
    fingerprint BINARY(32)     NOT NULL,
    payload     LONGBLOB       NOT NULL,
    headers     BLOB           NULL,
    topic       VARBINARY(255) NOT NULL DEFAULT '',
    message_id  VARBINARY(255) NOT NULL DEFAULT '',
    attempts    INT            NOT NULL,
    last_error  TEXT CHARACTER SET utf8mb4 NULL,
    parked_at   DATETIME(6)    NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY {{index "inbox_dead_key"}} (consumer, msg_key)
) ENGINE = InnoDB;

-- +goose Down
DROP TABLE {{table "inbox_dead"}};
DROP TABLE {{table "inbox_attempts"}};
DROP TABLE {{table "inbox"}};
