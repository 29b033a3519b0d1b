-- Run once by the postgres image on an empty data directory (docker-compose.yml). The image creates the
-- order service's database (POSTGRES_DB) owned by the txbox user; the payment service gets its own.
CREATE DATABASE payments OWNER txbox;
