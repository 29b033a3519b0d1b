-- Parking never fails for size, and error texts in any script (issue 11).
--
-- inbox_dead: headers become MEDIUMBLOB (a BLOB holds 65,535 bytes, less than a broker's property block once
-- JSON escapes it), and payload_bytes / headers_bytes record the delivered sizes when the dead letter had to be
-- cut to fit the server's max_allowed_packet (NULL when it is stored whole; its payload's SHA-256 is the
-- fingerprint column).
--
-- outbox, outbox_dead: last_error was created in the database's default character set; on a latin1 database a
-- broker error in another script failed the relay's UPDATE with error 1366. It is utf8mb4 like the inbox's.
-- Converting a column's character set copies the table: the outbox is small in its steady state, but a large
-- backlog makes this migration slow.

-- +goose NO TRANSACTION
-- +goose Up
ALTER TABLE {{table "inbox_dead"}}
    MODIFY headers MEDIUMBLOB NULL,
    ADD COLUMN payload_bytes BIGINT NULL,
    ADD COLUMN headers_bytes BIGINT NULL;
ALTER TABLE {{table "outbox"}} MODIFY last_error TEXT CHARACTER SET utf8mb4 NULL;
ALTER TABLE {{table "outbox_dead"}} MODIFY last_error TEXT CHARACTER SET utf8mb4 NULL;

-- +goose Down
-- last_error stays utf8mb4: converting it back could fail on the texts it now holds.
ALTER TABLE {{table "inbox_dead"}}
    DROP COLUMN headers_bytes,
    DROP COLUMN payload_bytes,
    MODIFY headers BLOB NULL;
