-- Run once by the mysql image on an empty data directory (docker-compose.yml). The image creates the
-- order service's database (MYSQL_DATABASE) and the txbox user; the payment service gets its own.
CREATE DATABASE IF NOT EXISTS payments;
GRANT ALL PRIVILEGES ON payments.* TO 'txbox'@'%';
