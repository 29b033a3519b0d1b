-- txbox inbox (MySQL 8+ / MariaDB 10.6+). Keys are VARBINARY: compared byte for byte (see 00001).

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE txbox_inbox (
    consumer    VARBINARY(128) NOT NULL,
    msg_key     VARBINARY(512) NOT NULL,
    fingerprint BINARY(32)     NOT NULL,
    received_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (consumer, msg_key),
    -- Purge scans this index by age; InnoDB secondary indexes carry the primary key, so it is index-only.
    KEY txbox_inbox_received_at (received_at)
) ENGINE = InnoDB;

-- Failed attempts, counted outside the handler's (rolled back) transaction.
CREATE TABLE txbox_inbox_attempts (
    consumer   VARBINARY(128) NOT NULL,
    msg_key    VARBINARY(512) NOT NULL,
    attempts   INT            NOT NULL,
    last_error TEXT           NULL,
    updated_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (consumer, msg_key)
) ENGINE = InnoDB;

CREATE TABLE txbox_inbox_dead (
    id          BIGINT         NOT NULL AUTO_INCREMENT,
    consumer    VARBINARY(128) NOT NULL,
    msg_key     VARBINARY(512) NOT NULL,
    fingerprint BINARY(32)     NOT NULL,
    payload     LONGBLOB       NOT NULL,
    headers     BLOB           NULL,
    attempts    INT            NOT NULL,
    last_error  TEXT           NULL,
    parked_at   DATETIME(6)    NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY txbox_inbox_dead_key (consumer, msg_key)
) ENGINE = InnoDB;

-- +goose Down
DROP TABLE txbox_inbox_dead;
DROP TABLE txbox_inbox_attempts;
DROP TABLE txbox_inbox;
