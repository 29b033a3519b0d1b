-- Leases (relay.Config.Lease). A relay claims rows in a short transaction that commits before it publishes them,
-- setting claim_token to the batch's token and the lease end (the database's now + Lease): in lease_until for a
-- row without a sharding key, in available_at for a keyed row, whose lease must hold back every other row of its
-- sharding key through the not-due index. Claims of other relays skip leased rows; the batch deletes, retries or
-- releases its rows only where claim_token is still its token.
--
-- claim_token: NULL (free), a positive batch token (leased), or -1 (held for a broker outage until available_at;
-- the relay that held it makes it due again when the topic's broker answers).
-- Neither column is indexed: the statements reach rows by primary key, and leasing a row without a sharding key
-- changes no indexed column (on PostgreSQL a HOT update, with the free space fillfactor leaves).

-- +goose Up
ALTER TABLE {{table "outbox"}} ADD COLUMN claim_token BIGINT NULL, ADD COLUMN lease_until TIMESTAMPTZ NULL;
-- Room on each page for a leased row's new version beside the old one (HOT update, no index entry). The outbox
-- is a queue: pages fill and empty, and leaving half of each free costs little.
ALTER TABLE {{table "outbox"}} SET (fillfactor = 50);

-- +goose Down
ALTER TABLE {{table "outbox"}} RESET (fillfactor);
ALTER TABLE {{table "outbox"}} DROP COLUMN lease_until, DROP COLUMN claim_token;
