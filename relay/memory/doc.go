// Package memory is an in-memory relay.Publisher for examples and tests: it keeps every record it accepts, in
// order, and lets a caller wait for them. It is not a broker stand-in for testing a broker adapter (use the
// conformance suite in internal/publishertest for that); it models a broker that always accepts, unless Fail
// says otherwise.
package memory
