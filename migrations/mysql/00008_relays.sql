-- The relays of a fleet (package relay/fleet) that hold or watch this installation: one row per relay, written at
-- its every heartbeat with the database's clock. The relays count the live ids they see in all their databases to
-- share the databases evenly; `txbox status` shows who holds the database. Rows of relays gone for an hour are
-- deleted by the relays still running.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE {{table "relays"}} (
    relay_id VARBINARY(64) NOT NULL,
    -- UTC_TIMESTAMP(6) of the relay's last heartbeat in this database.
    seen_at  DATETIME(6)   NOT NULL,
    -- TRUE while the relay holds this database's drain lease.
    holds    BOOLEAN       NOT NULL,
    -- How many databases the relay holds in all, and how many it may hold (its cap; 0: no cap).
    held     INT           NOT NULL,
    max_held INT           NOT NULL,
    PRIMARY KEY (relay_id)
) ENGINE = InnoDB;

-- +goose Down
DROP TABLE {{table "relays"}};
