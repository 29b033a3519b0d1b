package fleet

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/relay"
)

// Database is one txbox installation the fleet drains.
type Database struct {
	// Name identifies the database in the fleet, in logs, Status and metrics: 1 to 64 of A-Z a-z 0-9 . _ -,
	// unique in the set. Required.
	Name string
	// Dialect is the database family: dialect.MySQL or dialect.Postgres. Required.
	Dialect dialect.Dialect
	// Prefix names the installation's tables (see dialect.TablesFor). Default "txbox".
	Prefix string
	// DB is a pool on the database, of its own: the fleet sets its limits (see the package documentation,
	// "Connections"). The fleet never closes it; close it after Update has removed the database or Run has
	// returned. Required.
	DB *sqlx.DB
}

// State is where a database stands for this relay.
type State string

// The states of a database.
const (
	StatePending State = "pending"   // not looked at yet
	StateHeld    State = "held"      // this relay holds its drain lease and runs a relay on it
	StateOther   State = "elsewhere" // another relay holds its drain lease
	StateFree    State = "free"      // nobody holds it; this relay holds its share (or its cap) already
	StateDown    State = "down"      // it could not be reached or used: Err says why; looked at again with backoff
)

// DatabaseStatus is one database as this relay sees it.
type DatabaseStatus struct {
	Name  string
	State State
	// Since is when the database entered State (or, down, when the error changed).
	Since time.Time
	// Err says why the database is down (StateDown only). It may carry a driver's text: scrub it of secrets
	// before showing it where a DSN's password must not appear.
	Err error
	// Holder is the ID of the relay that holds the drain lease as this relay last saw it ("" when free or not
	// known); this relay's ID when StateHeld.
	Holder string
}

// Status is this relay's view of the fleet.
type Status struct {
	ID        string // this relay's ID
	Relays    int    // live relays it counts, itself included
	Held      int    // databases it holds
	Databases []DatabaseStatus
}

// Fleet runs a relay on each database of a set whose drain lease it holds, sharing the set with the other
// relays of the fleet (other Fleets, in this process or others, on overlapping sets). See the package
// documentation.
type Fleet struct {
	cfg Config

	mu      sync.Mutex
	running bool
	dbs     []Database // the set the last Update gave
	gen     uint64     // counts Updates
	done    uint64     // the last generation Run applied completely
	waiters []chan struct{}
	status  Status
	kick    chan struct{} // capacity 1: Update wakes Run
}

// New validates cfg, fills its defaults and returns a Fleet with no databases (see Update). Errors wrap
// ErrInvalidConfig.
func New(cfg Config) (*Fleet, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Fleet{cfg: cfg, kick: make(chan struct{}, 1), status: Status{ID: cfg.ID, Relays: 1}}, nil
}

// ID is this relay's ID (Config.ID, or the one New made up).
func (f *Fleet) ID() string { return f.cfg.ID }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Update sets the databases the fleet works on. A database that is new (by name, or by any field for a name
// already known) is looked at at once; a database that is no longer in the set is given up: its relay
// finishes its batches in flight, its lease is released, and the fleet never touches it again. While Run runs,
// Update returns once every database left out is given up (or ctx ends first, with ctx's error: the rest
// happens anyway). It validates the whole set first, and changes nothing when a database is invalid (the error
// wraps ErrInvalidDatabase and names it).
func (f *Fleet) Update(ctx context.Context, dbs []Database) error {
	seen := map[string]bool{}
	for i, d := range dbs {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: database %d (%q): "+format, append([]any{ErrInvalidDatabase, i + 1, d.Name}, args...)...)
		}
		switch {
		case !nameRE.MatchString(d.Name):
			return bad("Name: want 1 to 64 of A-Z a-z 0-9 . _ -")
		case seen[d.Name]:
			return bad("Name is used twice")
		case d.Dialect == nil:
			return bad("Dialect is required")
		case d.DB == nil:
			return bad("DB is required")
		}
		seen[d.Name] = true
		if _, err := relay.New(d.DB, f.relayConfig(d)); err != nil {
			return bad("%w", err)
		}
	}
	f.mu.Lock()
	f.dbs = slices.Clone(dbs)
	f.gen++
	if !f.running {
		f.done = f.gen
		f.mu.Unlock()
		return nil
	}
	w := make(chan struct{})
	f.waiters = append(f.waiters, w)
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Databases returns the set the last Update gave, in its order.
func (f *Fleet) Databases() []Database {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dbs)
}

// Status returns this relay's view: the databases by name, what it holds, how many relays it counts.
func (f *Fleet) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Databases = slices.Clone(st.Databases)
	return st
}

// Run works on the databases until ctx ends: it looks at the ones it does not hold, takes its share of the
// free ones, runs a relay on each it holds, and gives databases to relays that hold fewer. When ctx ends it
// stops every relay (each finishes its batches in flight), deletes its heartbeat from the databases it held,
// releases their leases and returns nil. Databases that cannot be reached or used never stop it: they are
// down, in Status, and looked at again with backoff. It returns ErrRunning when the Fleet runs already.
func (f *Fleet) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return ErrRunning
	}
	f.running = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running = false
		f.done = f.gen
		f.wakeWaiters()
		f.mu.Unlock()
	}()
	newLoop(f).run(ctx)
	return nil
}

// wakeWaiters releases the Updates whose generation is applied. Called with f.mu held.
func (f *Fleet) wakeWaiters() {
	if f.done != f.gen {
		return
	}
	for _, w := range f.waiters {
		close(w)
	}
	f.waiters = nil
}

// relayConfig is the configuration of d's relay.
func (f *Fleet) relayConfig(d Database) relay.Config {
	c := f.cfg.Relay
	c.Dialect, c.Prefix = d.Dialect, d.Prefix
	log := c.Logger
	if log == nil {
		log = f.cfg.Logger
	}
	c.Logger = log.With("database", d.Name)
	each, onBatch := c.OnBatch, f.cfg.OnBatch
	if onBatch != nil {
		c.OnBatch = func(b relay.BatchInfo) {
			if each != nil {
				each(b)
			}
			onBatch(d.Name, b)
		}
	}
	return c
}

// storeOf is d's Store; Update validated d's dialect and prefix.
func storeOf(d Database) store.Store {
	t, _ := dialect.TablesFor(d.Prefix)
	s, _ := store.New(d.Dialect, t)
	return s
}

// sameDatabase reports whether a and b are the same database to the fleet: a change of any field is a new
// database.
func sameDatabase(a, b Database) bool {
	return a.Name == b.Name && a.Dialect == b.Dialect && prefixOf(a) == prefixOf(b) && a.DB == b.DB
}

func prefixOf(d Database) string {
	if d.Prefix == "" {
		return dialect.DefaultPrefix
	}
	return d.Prefix
}
