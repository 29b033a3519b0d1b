-- Published outbox rows kept for a while (relay.Config.Retention): moved here, with the time of publishing, in
-- the transaction that records the publish, instead of being deleted. A table of their own keeps the outbox
-- itself small, so claims never step over published rows.

-- +goose Up
CREATE TABLE {{table "outbox_published"}} (
{{template "stored_message"}}
    published_at TIMESTAMPTZ NOT NULL
);
-- The relay's purge deletes the oldest first.
CREATE INDEX {{index "outbox_published_at"}} ON {{table "outbox_published"}} (published_at);
-- Operators look rows up by business key.
CREATE INDEX {{index "outbox_published_key"}} ON {{table "outbox_published"}} (msg_key);

-- +goose Down
DROP TABLE {{table "outbox_published"}};
