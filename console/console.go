package console

import (
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/outbox"
)

// Database is one txbox installation the console shows.
type Database struct {
	// Name identifies the database in pages, traces and the API, e.g. "orders". Required and unique among
	// Config.Databases: 1 to 64 ASCII letters, digits, '.', '_' and '-'.
	Name string
	// DB is the database's pool. Required. The console never closes it.
	DB *sqlx.DB
	// Dialect is the database family: dialect.MySQL or dialect.Postgres. Required.
	Dialect dialect.Dialect
	// Prefix names the installation's tables (see dialect.TablesFor). Default "txbox".
	Prefix string
}

// Defaults and limits of Config.
const (
	DefaultTraceLimit   = 100
	DefaultPageSize     = 50
	DefaultQueryTimeout = 10 * time.Second
	DefaultSessionTTL   = 12 * time.Hour
	// MaxPageSize bounds Config.PageSize, Config.TraceLimit and the limit of a request.
	MaxPageSize = 1000
	// MinTokenLength is the shortest Config.Token New accepts.
	MinTokenLength = 16
	// MaxBulk is the most dead letters one bulk operation (Selection.All) changes; run it again for more.
	MaxBulk = 10000
)

// Config configures a Console. Databases is required, and Token unless ReadOnly.
type Config struct {
	// Databases are the installations the console shows: traces span all of them. Required, at least one.
	Databases []Database
	// Token authorizes every request that changes a database. API requests carry it as "Authorization: Bearer
	// <token>"; the pages exchange it once, at /login, for a session cookie. Required unless ReadOnly; at least
	// MinTokenLength bytes. The console never logs or shows it. Default none.
	Token string
	// ReadOnly refuses every operation that would change a database (ErrReadOnly), and the pages offer none.
	// Default false.
	ReadOnly bool
	// ShowPayloads sends dead letters' payloads to requests that carry the token or a page session; everyone
	// else, and everyone when it is false, sees only their size. Default false.
	ShowPayloads bool
	// Broker looks up the broker's copies of traced keys. Default none: traces show the databases only.
	Broker Broker
	// BasePath is the path the handler is mounted under, without a trailing slash: "/txbox" for
	// mux.Handle("/txbox/", c). Default "": the root.
	BasePath string
	// TraceLimit bounds the rows a trace reads from each table of each database (and per consumer from the
	// inbox tables). Default 100; 1 to MaxPageSize.
	TraceLimit int
	// PageSize is the number of dead letters or keys on a page when a request does not say. Default 50; 1 to
	// MaxPageSize.
	PageSize int
	// QueryTimeout bounds the database work of one read (a trace, a page), and of each change of Apply: the
	// outbox's one statement, each inbox dead letter's transaction. Default 10s.
	QueryTimeout time.Duration
	// SessionTTL is how long a page session lasts after login. Default 12h.
	SessionTTL time.Duration
	// Logger receives one Info record per operation that changed something (action, database, ids, counts) and
	// request errors at Warn. Never payloads, tokens or DSNs. Default: none.
	Logger *slog.Logger
}

var validName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// withDefaults returns c with zero values replaced by defaults, or an error naming the first bad field.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if len(c.Databases) == 0 {
		return bad("Databases: at least one database is required")
	}
	seen := map[string]bool{}
	dbs := make([]Database, len(c.Databases))
	for i, d := range c.Databases {
		switch {
		case !validName.MatchString(d.Name):
			return bad("Databases[%d].Name %q: want 1 to 64 ASCII letters, digits, '.', '_' or '-'", i, d.Name)
		case seen[d.Name]:
			return bad("Databases[%d].Name %q is used twice", i, d.Name)
		case d.DB == nil:
			return bad("Databases[%d] (%s): DB is required", i, d.Name)
		case d.Dialect == nil:
			return bad("Databases[%d] (%s): Dialect is required (dialect.MySQL or dialect.Postgres)", i, d.Name)
		}
		seen[d.Name] = true
		if d.Prefix == "" {
			d.Prefix = dialect.DefaultPrefix
		}
		if _, err := dialect.TablesFor(d.Prefix); err != nil {
			return bad("Databases[%d] (%s): Prefix: %v", i, d.Name, err)
		}
		dbs[i] = d
	}
	c.Databases = dbs
	switch {
	case c.Token == "" && !c.ReadOnly:
		return bad("Token is required unless ReadOnly: every change needs it")
	case c.Token != "" && len(c.Token) < MinTokenLength:
		return bad("Token must be at least %d bytes, got %d", MinTokenLength, len(c.Token))
	}
	if c.BasePath != "" && (!strings.HasPrefix(c.BasePath, "/") || strings.HasSuffix(c.BasePath, "/")) {
		return bad("BasePath %q must start with '/' and not end with one", c.BasePath)
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{{"TraceLimit", &c.TraceLimit, DefaultTraceLimit}, {"PageSize", &c.PageSize, DefaultPageSize}}
	for _, f := range ints {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 1 || *f.v > MaxPageSize {
			return bad("%s must be between 1 and %d, got %d", f.name, MaxPageSize, *f.v)
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"QueryTimeout", &c.QueryTimeout, DefaultQueryTimeout}, {"SessionTTL", &c.SessionTTL, DefaultSessionTTL}}
	for _, f := range durs {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return bad("%s must be positive, got %s", f.name, *f.v)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Console answers the operator's questions about a set of txbox installations and repairs their dead
// letters. Its methods are the Go API; ServeHTTP serves the same as pages and as a JSON API (see the package
// documentation). It is safe for concurrent use.
type Console struct {
	cfg     Config
	dbs     []*database
	byName  map[string]*database
	handler http.Handler
}

// database is one Database with what the console runs on it.
type database struct {
	Database
	s  store.Store
	ob *outbox.Outbox

	mu      sync.Mutex
	inboxes map[string]*inbox.Inbox // by consumer, made on first use
}

// New validates cfg and returns a Console. It does not touch the databases: a database that is down shows
// as an error on the pages and in traces. Errors wrap ErrInvalidConfig.
func New(cfg Config) (*Console, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, byName: map[string]*database{}}
	for _, d := range cfg.Databases {
		t, _ := dialect.TablesFor(d.Prefix) // validated by withDefaults
		s, err := store.New(d.Dialect, t)
		if err != nil {
			return nil, fmt.Errorf("%w: database %s: %w", ErrInvalidConfig, d.Name, err)
		}
		ob, err := outbox.New(outbox.Config{Dialect: d.Dialect, Prefix: d.Prefix})
		if err != nil {
			return nil, fmt.Errorf("%w: database %s: %w", ErrInvalidConfig, d.Name, err)
		}
		db := &database{Database: d, s: s, ob: ob, inboxes: map[string]*inbox.Inbox{}}
		c.dbs = append(c.dbs, db)
		c.byName[d.Name] = db
	}
	c.handler = c.routes()
	return c, nil
}

// Databases returns the names of the console's databases, in Config order.
func (c *Console) Databases() []string {
	out := make([]string, len(c.dbs))
	for i, d := range c.dbs {
		out[i] = d.Name
	}
	return out
}

func (c *Console) database(name string) (*database, error) {
	d, ok := c.byName[name]
	if !ok {
		if name == "" {
			return nil, fmt.Errorf("%w: no database named (one of %s)", ErrInvalidRequest, strings.Join(c.Databases(), ", "))
		}
		return nil, fmt.Errorf("%w: database %q (the console has %s)", ErrNotFound, Printable(name), strings.Join(c.Databases(), ", "))
	}
	return d, nil
}

// inbox returns the Inbox of consumer on d, for the dead-letter operations.
func (d *database) inbox(consumer string) (*inbox.Inbox, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ib, ok := d.inboxes[consumer]; ok {
		return ib, nil
	}
	ib, err := inbox.New(d.DB, inbox.Config{Dialect: d.Dialect, Prefix: d.Prefix, Consumer: consumer})
	if err != nil {
		return nil, fmt.Errorf("%w: consumer %q: %w", ErrInvalidRequest, Printable(consumer), err)
	}
	d.inboxes[consumer] = ib
	return ib, nil
}
