// Package faults breaks things on purpose, for the tests and the fault suite (cmd/txbox-faults) that check
// txbox's promises while its parts fail:
//
//   - Proxy sits between a client and a server on 127.0.0.1 and resets connections: all of them, one at random,
//     one every so often, or the first that sends a given statement (to cut inbox.Process at begin, claim,
//     handler or commit).
//   - Stack runs private PostgreSQL, MariaDB and RocketMQ servers through the project's scripts, in a state
//     directory and on ports of its own, with durable settings; it SIGKILLs and restarts them and removes
//     everything on Close (CleanStale removes what a killed run left).
//   - Recorder is a relay.Publisher that records every call: rows published twice at once, overlapping
//     publishes of one sharding key, keys out of order, keys never published or published again.
//
// Nothing here is used outside tests and the fault suite.
package faults
