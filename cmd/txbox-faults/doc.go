// Command txbox-faults is txbox's fault suite: it checks, on servers it starts itself, that txbox keeps its
// promises while the database, the broker, the network and the relay fail, and prints what it saw. Run it with
// `make faults` (both databases, full sizes) or directly:
//
//	go run ./cmd/txbox-faults [-db mariadb,postgres] [-scenarios ...] [-rows 20000] [-outages 10s,60s] [-v]
//
// It starts private PostgreSQL (fsync and synchronous_commit on), MariaDB (log flushed at every commit) and
// RocketMQ (name server and broker) through scripts/postgres.sh, mariadb.sh and rocketmq.sh, in a state
// directory of its own under the temporary directory and on free ports, never touching the servers tests or
// users run; it stops them and removes the directory when it ends, also after an error or SIGINT/SIGTERM (a
// run that was SIGKILLed is cleaned up by the next one). It needs what `make services` installs (the database
// packages and RocketMQ's jars, which it reuses) and root (the scripts run each server as its own user).
//
// Scenarios, each on each database:
//
//	db-kill-drain  3 relays drain a backlog while a producer commits; the database is SIGKILLed at 30% and
//	               started again 2s later
//	db-kill-inbox  8 workers process deliveries through inbox.Process (one effect row per key), redeliver what
//	               fails and deliver a third of the keys again after success; the database is SIGKILLed at 30%
//	conn-reset     3 relays drain through a TCP proxy that resets a connection every 100-300 ms, with a
//	               publisher taking 50-150 ms per record
//	broker-kill    2 relays publish to RocketMQ; the broker is SIGKILLed at 30% and started again after each
//	               -outages duration; a consumer counts what arrived
//	relay-kill     `txbox relay` (built from ./cmd/txbox, or -txbox) drains to RocketMQ and is SIGKILLed
//	               -relay-kills times
//
// Each report gives: messages lost (must be 0), effects applied twice (must be 0; inbox), duplicates published
// and their cause, concurrent publishes of one row or one sharding key and order violations (must be 0; relays
// in this process, whose publisher records every call), and recovery times. broker-kill also checks that no row
// was dead-lettered because of the outage and that the outbox is empty within 2s + backlog / normal drain rate
// after the broker's port accepts connections again. The exit status is 0 when every invariant held, 1 when one
// broke, 2 when the suite could not run.
//
// `make test` runs a bounded version (TestBoundedFaults: 1,000 rows, a 2s outage), which checks the same
// invariants but prints the recovery times without enforcing them.
package main
