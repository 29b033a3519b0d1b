-- txbox idempotency records of effects outside the database (package inbox: Effects on SQL), PostgreSQL 13+.
-- One row per (consumer, key); every change is one statement, fenced by the owner token of the run that holds
-- the lease. Keys use COLLATE "C": byte order, byte equality.

-- +goose Up
CREATE TABLE {{table "effects"}} (
    consumer    TEXT COLLATE "C" NOT NULL,
    msg_key     TEXT COLLATE "C" NOT NULL,
    fingerprint BYTEA       NOT NULL,
    -- 1 running (leased to owner until lease_until), 2 released (the last run failed; free to run again),
    -- 3 completed (result saved).
    state       SMALLINT    NOT NULL,
    -- TRUE while the record is parked: payload, headers, topic, message_id and parked_at hold the delivery.
    parked      BOOLEAN     NOT NULL DEFAULT FALSE,
    -- The token of the run that holds (or last held) the lease: a new random value for every run.
    owner       BYTEA       NOT NULL,
    lease_until TIMESTAMPTZ NULL,
    -- Failed runs: released with an error, or leases that expired and were taken over.
    attempts    INT         NOT NULL DEFAULT 0,
    result      BYTEA       NULL,
    last_error  TEXT        NULL,
    -- When the key was first begun: Retention runs from here. Completing does not move it, so that a completion
    -- changes no indexed column (PostgreSQL can update the row in place, MySQL leaves the purge index alone).
    recorded_at TIMESTAMPTZ NOT NULL,
    payload     BYTEA       NULL,
    headers     JSONB       NULL,
    topic       TEXT        NOT NULL DEFAULT '',
    message_id  TEXT        NOT NULL DEFAULT '',
    parked_at   TIMESTAMPTZ NULL,
    PRIMARY KEY (consumer, msg_key),
    CHECK (state IN (1, 2, 3)),
    CHECK (octet_length(msg_key) BETWEEN 1 AND 512),
    CHECK (octet_length(consumer) BETWEEN 1 AND 128)
);
-- Purge walks this index oldest first; parked records are never purged, so they are left out of it.
CREATE INDEX {{index "effects_purge"}} ON {{table "effects"}} (consumer, recorded_at) INCLUDE (msg_key) WHERE NOT parked;
-- Parked records, listed in key order.
CREATE INDEX {{index "effects_parked"}} ON {{table "effects"}} (consumer, msg_key) WHERE parked;

-- +goose Down
DROP TABLE {{table "effects"}};
