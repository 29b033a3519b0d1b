// Command txbox runs, inspects and repairs txbox outboxes and inboxes in production.
//
//	txbox migrate up|status           create or upgrade txbox's tables; list migrations
//	txbox status [--json]             outbox backlog and lag, dead letters, inbox size, per topic and consumer
//	txbox relay --namesrv IP:PORT     publish the outbox to RocketMQ until SIGTERM/SIGINT; --metrics-addr serves
//	                                  /metrics (Prometheus), /healthz and /readyz
//	txbox dead list --outbox|--inbox [--consumer C] [--key K] [--json]
//	                                  list dead letters (outbox rows the relay gave up on, parked inbox messages)
//	txbox dead requeue --outbox|--inbox (--id N... | --key K | --all) [--dry-run]
//	                                  send them again: outbox rows back to the relay; inbox messages enqueued in
//	                                  the same database's outbox with their parked key released, in one transaction
//	txbox dead drop --outbox|--inbox (--id N... | --key K | --all) [--dry-run]
//	                                  delete them (an inbox key stays recorded as processed)
//	txbox inbox purge --older-than 7d [--consumer C]
//	                                  delete inbox keys older than the duration, in small batches
//	txbox trace KEY [--exact] [--json] [--databases FILE] [--namesrv IP:PORT]
//	                                  where the messages with a business key are: one timeline across every
//	                                  database (and the broker's stored copies)
//	txbox console [--addr 127.0.0.1:7070] [--databases FILE] [--read-only] [--show-payloads]
//	                                  serve the web console and its JSON API (package console); changes need
//	                                  --token or TXBOX_CONSOLE_TOKEN
//
// Every command reads the database from --dialect/--dsn or TXBOX_DIALECT/TXBOX_DSN (trace and console also take
// a file naming several databases, --databases or TXBOX_DATABASES, with ${ENV} in DSNs), and the relay its name
// servers from --namesrv or TXBOX_ROCKETMQ_NAMESRV. Bad flags exit with status 2; an unreachable database or
// name server, an unmigrated schema or a failed operation exit with status 1. Logs go to stderr as slog text
// with the keys topic, key, outbox_id, consumer and attempt. Run `txbox help <command>` for the details and
// examples of each.
package main
