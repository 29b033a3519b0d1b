-- Parking never fails for size (issue 11): payload_bytes / headers_bytes record the delivered sizes when a dead
-- letter had to be cut to be stored (NULL when it is stored whole; its payload's SHA-256 is the fingerprint
-- column). PostgreSQL stores every payload the inbox accepts whole; the columns keep both dialects' dead letters
-- alike.

-- +goose Up
ALTER TABLE {{table "inbox_dead"}}
    ADD COLUMN payload_bytes BIGINT NULL,
    ADD COLUMN headers_bytes BIGINT NULL;

-- +goose Down
ALTER TABLE {{table "inbox_dead"}}
    DROP COLUMN headers_bytes,
    DROP COLUMN payload_bytes;
