-- txbox idempotency records of effects outside the database (package inbox: Effects on SQL), MySQL 8+ / MariaDB
-- 10.6+. One row per (consumer, key); every change is one statement, fenced by the owner token of the run that
-- holds the lease. Keys are VARBINARY: compared byte for byte (see 00001). Instants are UTC DATETIME(6).

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE {{table "effects"}} (
    consumer    VARBINARY(128) NOT NULL,
    msg_key     VARBINARY(512) NOT NULL,
    fingerprint BINARY(32)     NOT NULL,
    -- 1 running (leased to owner until lease_until), 2 released (the last run failed; free to run again),
    -- 3 completed (result saved).
    state       TINYINT        NOT NULL,
    -- TRUE while the record is parked: payload, headers, topic, message_id and parked_at hold the delivery.
    parked      BOOLEAN        NOT NULL DEFAULT FALSE,
    -- The token of the run that holds (or last held) the lease: a new random value for every run.
    owner       BINARY(16)     NOT NULL,
    lease_until DATETIME(6)    NULL,
    -- Failed runs: released with an error, or leases that expired and were taken over.
    attempts    INT            NOT NULL DEFAULT 0,
    result      BLOB           NULL,
    last_error  TEXT CHARACTER SET utf8mb4 NULL,
    -- When the key was first begun: Retention runs from here. Completing does not move it, so that a completion
    -- changes no indexed column (PostgreSQL can update the row in place, MySQL leaves the purge index alone).
    recorded_at DATETIME(6)    NOT NULL,
    payload     LONGBLOB       NULL,
    headers     BLOB           NULL,
    topic       VARBINARY(255) NOT NULL DEFAULT '',
    message_id  VARBINARY(255) NOT NULL DEFAULT '',
    parked_at   DATETIME(6)    NULL,
    PRIMARY KEY (consumer, msg_key),
    -- Purge reads a batch of keys from this index oldest first (index-only), then deletes them by primary key;
    -- listing parked records reads its (consumer, TRUE) range.
    KEY {{index "effects_purge"}} (consumer, parked, recorded_at)
) ENGINE = InnoDB;

-- +goose Down
DROP TABLE {{table "effects"}};
