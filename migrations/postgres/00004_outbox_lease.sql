-- Leases (relay.Config.Lease). A relay claims rows in a short transaction that commits before it publishes them:
-- available_at becomes the lease end (the database's now + Lease) and claim_token the batch's token. Claims of
-- other relays skip the rows because they are not due, and a leased keyed row holds back every other row of its
-- sharding key. The batch deletes, retries or releases its rows only where claim_token is still its token.
--
-- claim_token: NULL (free), a positive batch token (leased until available_at), or -1 (held for a broker
-- outage until available_at; the relay that held it makes it due again when the topic's broker answers).
-- Not indexed: the claim statements reach rows by primary key or through the not-due index.

-- +goose Up
ALTER TABLE {{table "outbox"}} ADD COLUMN claim_token BIGINT NULL;

-- +goose Down
ALTER TABLE {{table "outbox"}} DROP COLUMN claim_token;
