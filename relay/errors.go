package relay

import "errors"

// ErrInvalidConfig is returned (wrapped, naming the field) by New for a bad Config.
var ErrInvalidConfig = errors.New("relay: invalid config")

// ErrPermanent, wrapped into an error returned by a Publisher, says retrying cannot help (e.g. the broker
// rejects the message as too large): the row goes to the dead-letter table at once instead of after
// MaxAttempts.
var ErrPermanent = errors.New("relay: permanent publish failure")

// ErrPublishPanic is recorded as the error of a publish whose Publisher panicked.
var ErrPublishPanic = errors.New("relay: publisher panicked")

// ErrUnavailable, wrapped into an error returned by a Publisher, says the broker (or the route to the topic)
// could not be reached: connection refused or reset, no route, no broker for the topic. Such a failure counts
// no attempt and adds no backoff: the row is given back untouched. When a topic's publishes keep failing this
// way the relay opens the topic's circuit breaker: it holds the topic's rows, tries one publish every
// Config.ProbeInterval, and when one succeeds makes the held rows due at once. A Publisher must use it only
// for failures that say nothing about the record itself, or a record that can never be sent would be retried
// for ever.
var ErrUnavailable = errors.New("relay: broker unavailable")
