package fleet

import "errors"

// ErrInvalidConfig is returned (wrapped, naming the field) by New for a bad Config.
var ErrInvalidConfig = errors.New("relay/fleet: invalid config")

// ErrInvalidDatabase is returned (wrapped, naming the database and the field) by Update for a bad Database or a
// set that names a database twice. Update then changes nothing.
var ErrInvalidDatabase = errors.New("relay/fleet: invalid database")

// ErrRunning is returned by Run when the Fleet is running already.
var ErrRunning = errors.New("relay/fleet: already running")

// ErrLeaseLost is the error of a database whose drain lease this relay no longer holds: its session ended (the
// connection broke, the server restarted or dropped it) or a heartbeat could not check it within Timeout.
var ErrLeaseLost = errors.New("relay/fleet: drain lease lost")

// ErrRelayStopped is the error of a database whose relay stopped on its own (relay.Relay.Run returned an error,
// which it wraps: an unmigrated schema, say).
var ErrRelayStopped = errors.New("relay/fleet: relay stopped")
