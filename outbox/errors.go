package outbox

import "errors"

// ErrInvalidMessage is returned (wrapped, naming the message and the field) by Enqueue for a message that
// cannot be stored as given: empty or over-long topic, tag or sharding key, oversized payload, bad headers. An
// invalid key also matches dialect.ErrInvalidKey. Nothing is written when Enqueue returns it.
var ErrInvalidMessage = errors.New("outbox: invalid message")

// ErrInvalidConfig is returned (wrapped, naming the field) by New for a bad Config.
var ErrInvalidConfig = errors.New("outbox: invalid config")
