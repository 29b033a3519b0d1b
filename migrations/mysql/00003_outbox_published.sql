-- Published outbox rows kept for a while (relay.Config.Retention): moved here, with the time of publishing, in
-- the transaction that records the publish, instead of being deleted. A table of their own keeps the outbox
-- itself small, so claims never step over published rows.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE {{table "outbox_published"}} (
{{template "stored_message"}}
    published_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (id),
    -- The relay's purge deletes the oldest first.
    KEY {{index "outbox_published_at"}} (published_at),
    -- Operators look rows up by business key.
    KEY {{index "outbox_published_key"}} (msg_key)
) ENGINE = InnoDB;

-- +goose Down
DROP TABLE {{table "outbox_published"}};
