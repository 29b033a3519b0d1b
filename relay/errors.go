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
