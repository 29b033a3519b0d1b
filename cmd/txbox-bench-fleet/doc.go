// Command txbox-bench-fleet measures a relay fleet (`txbox relay --databases`, package relay/fleet) on the
// services of scripts/services.sh: the aggregate drain throughput of several relay processes sharing many
// databases against the same relays on one database, and how long the databases of a SIGKILLed relay take to be
// taken over and drained again. It is a measurement, not a test: `make bench-fleet` runs it; figures are medians
// of -rounds with min–max.
//
// Each round creates fresh databases (half MariaDB databases, half PostgreSQL schemas, on the shared servers),
// fills every outbox with -rows unkeyed messages while no relay runs, starts -relays processes of the txbox
// binary (-txbox) on a databases file naming them all, and times the drain to the shared broker: from the first
// poll (every 100ms) that sees the total backlog fall to the one that sees it empty, so that process start and
// the fleet's first look (one ProbeInterval) are not counted. The single-database figure is the same with one
// database (holding as many rows as all of the others together): only one relay can drain it.
//
// The takeover: with the fleet settled (every database held once) and a trickle of messages, one relay is
// SIGKILLed; "held" is when the survivors' /metrics show each of its databases held again, "drained" when a
// message enqueued into each of them right after the kill has left its outbox.
//
//	go build -o /tmp/txbox ./cmd/txbox && go run ./cmd/txbox-bench-fleet -txbox /tmp/txbox
package main
