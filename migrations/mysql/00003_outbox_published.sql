-- Published outbox rows kept for a while (relay.Config.Retention): moved here, with the time of publishing, in
-- the transaction that records the publish, instead of being deleted. A table of their own keeps the outbox
-- itself small, so claims never step over published rows.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE {{table "outbox_published"}} (
    id           BIGINT         NOT NULL,
    part         SMALLINT       NOT NULL,
    topic        VARBINARY(255) NOT NULL,
    msg_key      VARBINARY(512) NOT NULL,
    tag          VARBINARY(255) NOT NULL DEFAULT '',
    sharding_key VARBINARY(255) NOT NULL DEFAULT '',
    payload      LONGBLOB       NOT NULL,
    headers      BLOB           NULL,
    attempts     INT            NOT NULL,
    created_at   DATETIME(6)    NOT NULL,
    published_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (id),
    -- The relay's purge deletes the oldest first.
    KEY {{index "outbox_published_at"}} (published_at),
    -- Operators look rows up by business key.
    KEY {{index "outbox_published_key"}} (msg_key)
) ENGINE = InnoDB;

-- +goose Down
DROP TABLE {{table "outbox_published"}};
