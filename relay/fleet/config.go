package fleet

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/relay"
)

// Config configures a Fleet. Relay.Publisher is required; every other field has a default.
type Config struct {
	// Relay configures the relay the fleet runs on each database it holds (package relay). Publisher is
	// required; Dialect and Prefix must be left empty: each Database brings its own. Its OnBatch, if set, is
	// called for the batches of every database (Config.OnBatch also says which); its Logger defaults to the
	// fleet's Logger, and gets the database's name as the attribute "database".
	Relay relay.Config
	// ID names this relay in the databases' heartbeat rows (<prefix>_relays), in Status and in logs. Every relay
	// of a fleet needs an ID of its own: two relays with one ID count as one, and the databases are then not
	// shared evenly. 1 to 64 bytes. Default: the host name, the process id and 6 random hex digits
	// ("host-1234-0a1b2c").
	ID string
	// MaxHeld caps how many databases this relay holds at once. A relay at its cap takes no more, even from a
	// relay that died; the fleet as a whole then drains at most the sum of its relays' caps. Default 0: no cap
	// (the fair share alone decides).
	MaxHeld int
	// HeartbeatInterval is how often the relay checks, on each database it holds, that its session still holds
	// the drain lease and records its heartbeat; it is also how often the relay considers giving a database to a
	// relay that holds fewer. A check that fails stops the database's relay. Default 1s; 10ms to 10s.
	HeartbeatInterval time.Duration
	// ProbeInterval is how often the relay looks at each database it does not hold (is its lease free, which
	// relays are live), one connection per look; a database that could not be reached is looked at again after
	// ProbeInterval, doubling up to MaxRetryInterval. Default 1s; at least 10ms.
	ProbeInterval time.Duration
	// Probes is the most looks (and so connections) the relay has open at once. Default 2; 1 to 16.
	Probes int
	// RelayTTL is how long after its last heartbeat a relay still counts as live. It must exceed twice the
	// longer of HeartbeatInterval and ProbeInterval (a live relay writes a heartbeat into every database it
	// holds or looks at within that). Default 5 × the longer of the two.
	RelayTTL time.Duration
	// TakeoverGrace is how long a database may stay free (its lease held by nobody) before a relay takes it
	// even though it holds its fair share already (up to MaxHeld): a relay that died still counts as live for
	// RelayTTL, and its databases should not wait that long. Default 2 × ProbeInterval; at least ProbeInterval.
	TakeoverGrace time.Duration
	// MaxRetryInterval bounds the wait between looks at a database that could not be reached or used.
	// Default 15s; at least ProbeInterval.
	MaxRetryInterval time.Duration
	// Timeout bounds each look and each heartbeat, connecting included. A heartbeat that takes longer counts as
	// a lost lease. Default 5s; at least 100ms.
	Timeout time.Duration
	// Logger receives the fleet's logs: databases taken, given up, lost and down at Info and Warn, looks at
	// Debug. Default: none.
	Logger *slog.Logger
	// OnBatch, if set, is called after each batch of each database's relay, with the database's name, from
	// the relay's worker goroutine (metrics.Fleet.ObserveBatch fits). Default: none.
	OnBatch func(database string, b relay.BatchInfo)
	// OnChange, if set, is called from the fleet's goroutine whenever a database's state, error or holder
	// changes, with its new status. It must return quickly. Default: none.
	OnChange func(DatabaseStatus)
}

// Defaults filled in by New.
const (
	DefaultHeartbeatInterval = time.Second
	DefaultProbeInterval     = time.Second
	DefaultProbes            = 2
	DefaultMaxRetryInterval  = 15 * time.Second
	DefaultTimeout           = 5 * time.Second
	// DefaultRelayTTLFactor times the longer of HeartbeatInterval and ProbeInterval is the default RelayTTL.
	DefaultRelayTTLFactor = 5
	// DefaultTakeoverGraceFactor times ProbeInterval is the default TakeoverGrace.
	DefaultTakeoverGraceFactor = 2
)

// LeaseIdleTimeout is how long the database keeps the session that holds a drain lease while it is idle (see
// package doc, "Connections"): the relay uses it every HeartbeatInterval, so only a session whose relay vanished
// without a TCP reset reaching the server stays idle that long.
const LeaseIdleTimeout = 30 * time.Second

// withDefaults returns c with zero values replaced by defaults, or an error naming the first bad field.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.Relay.Publisher == nil:
		return bad("Relay.Publisher is required")
	case c.Relay.Dialect != nil:
		return bad("Relay.Dialect must be empty: each Database names its dialect")
	case c.Relay.Prefix != "":
		return bad("Relay.Prefix must be empty: each Database names its prefix")
	case c.MaxHeld < 0:
		return bad("MaxHeld must not be negative, got %d", c.MaxHeld)
	}
	if c.Relay.Workers == 0 {
		c.Relay.Workers = relay.DefaultWorkers // the pools are sized by it
	}
	// The relay's own checks, on a placeholder pool it never touches in New.
	probe := c.Relay
	probe.Dialect = dialect.MySQL
	if _, err := relay.New(&sqlx.DB{}, probe); err != nil {
		return bad("Relay: %w", err)
	}
	if c.ID == "" {
		c.ID = defaultID()
	}
	if len(c.ID) > 64 {
		return bad("ID must be 1 to 64 bytes, got %d", len(c.ID))
	}
	if c.Probes == 0 {
		c.Probes = DefaultProbes
	}
	if c.Probes < 1 || c.Probes > 16 {
		return bad("Probes must be between 1 and 16, got %d", c.Probes)
	}
	for _, f := range []struct {
		name       string
		v          *time.Duration
		def, floor time.Duration
	}{
		{"HeartbeatInterval", &c.HeartbeatInterval, DefaultHeartbeatInterval, 10 * time.Millisecond},
		{"ProbeInterval", &c.ProbeInterval, DefaultProbeInterval, 10 * time.Millisecond},
		{"Timeout", &c.Timeout, DefaultTimeout, 100 * time.Millisecond},
		{"MaxRetryInterval", &c.MaxRetryInterval, DefaultMaxRetryInterval, 0},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < f.floor || *f.v < 0 {
			return bad("%s must be at least %s, got %s", f.name, f.floor, *f.v)
		}
	}
	if c.HeartbeatInterval > 10*time.Second {
		return bad("HeartbeatInterval must be at most 10s (the lease session's idle timeout is %s), got %s",
			LeaseIdleTimeout, c.HeartbeatInterval)
	}
	if c.MaxRetryInterval < c.ProbeInterval {
		return bad("MaxRetryInterval (%s) must not be less than ProbeInterval (%s)", c.MaxRetryInterval, c.ProbeInterval)
	}
	longer := max(c.HeartbeatInterval, c.ProbeInterval)
	if c.RelayTTL == 0 {
		c.RelayTTL = DefaultRelayTTLFactor * longer
	}
	if c.RelayTTL <= 2*longer {
		return bad("RelayTTL (%s) must exceed twice the longer of HeartbeatInterval and ProbeInterval (%s)", c.RelayTTL, longer)
	}
	if c.TakeoverGrace == 0 {
		c.TakeoverGrace = DefaultTakeoverGraceFactor * c.ProbeInterval
	}
	if c.TakeoverGrace < c.ProbeInterval {
		return bad("TakeoverGrace (%s) must not be less than ProbeInterval (%s)", c.TakeoverGrace, c.ProbeInterval)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// defaultID is "<host>-<pid>-<6 hex digits>", cut to 64 bytes.
func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "relay"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	suffix := fmt.Sprintf("-%d-%s", os.Getpid(), hex.EncodeToString(b))
	if len(host)+len(suffix) > 64 {
		host = host[:64-len(suffix)]
	}
	return host + suffix
}
