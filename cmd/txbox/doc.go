// Command txbox runs, inspects and repairs txbox outboxes and inboxes in production.
//
//	txbox migrate up|status     create or upgrade txbox's tables; list migrations
//	txbox status [--json]       outbox backlog and lag, dead letters, inbox size, per topic and consumer
//
// Every command reads the database from --dialect/--dsn or TXBOX_DIALECT/TXBOX_DSN. Run `txbox help <command>`
// for the details and examples of each.
package main
