package effectstest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // registers "mysql" for subprocesses
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // registers "postgres"
	goredis "github.com/redis/go-redis/v9"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/redis"
)

// The subprocess of testKilled reads what to do from these variables.
const (
	childEnv      = "TXBOX_EFFECTS_CHILD"
	childSpec     = "TXBOX_EFFECTS_SPEC"
	childConsumer = "TXBOX_EFFECTS_CONSUMER"
	childKey      = "TXBOX_EFFECTS_KEY"
	childLease    = "TXBOX_EFFECTS_LEASE"
	childGateway  = "TXBOX_EFFECTS_GATEWAY"
)

// SQLSpec is the Spec of an SQLEffectStore on the database dsn reached through driver.
func SQLSpec(driver string, d dialect.Dialect, dsn string) string {
	return strings.Join([]string{"sql", driver, d.Name(), dsn}, "\t")
}

// RedisSpec is the Spec of a redis.Store on the server at addr with prefix.
func RedisSpec(addr, prefix string) string {
	return strings.Join([]string{"redis", addr, prefix}, "\t")
}

// MaybeChild turns the test binary into testKilled's consumer when it was started as one: call it first in
// TestMain. The consumer begins the key's effect, charges the gateway with the key as idempotency key, says
// "acted <charge>" on stdout and then waits to be killed, never completing.
func MaybeChild() {
	if os.Getenv(childEnv) == "" {
		return
	}
	if err := child(); err != nil {
		fmt.Fprintln(os.Stderr, "effects child:", err)
		os.Exit(2)
	}
	os.Exit(0) // not reached: the parent kills it
}

func child() error {
	ctx := context.Background()
	st, err := open(os.Getenv(childSpec))
	if err != nil {
		return err
	}
	lease, err := time.ParseDuration(os.Getenv(childLease))
	if err != nil {
		return err
	}
	fx, err := inbox.NewEffects(st, inbox.EffectsConfig{Consumer: os.Getenv(childConsumer), Lease: lease})
	if err != nil {
		return err
	}
	gw := &gatewayClient{url: os.Getenv(childGateway)}
	_, err = fx.Run(ctx, delivery(os.Getenv(childKey)), func(ctx context.Context, c *inbox.Claim) ([]byte, error) {
		charge, err := gw.charge(context.WithoutCancel(ctx), c.Key)
		if err != nil {
			return nil, err
		}
		fmt.Printf("acted %s\n", charge)
		select {} // killed here, between acting and completing
	})
	return err
}

// open opens the store a Spec names.
func open(spec string) (inbox.EffectStore, error) {
	f := strings.Split(spec, "\t")
	switch {
	case len(f) == 4 && f[0] == "sql":
		d, err := dialect.Parse(f[2])
		if err != nil {
			return nil, err
		}
		db, err := sqlx.Open(f[1], f[3])
		if err != nil {
			return nil, err
		}
		return inbox.NewSQLEffectStore(db, inbox.SQLEffectStoreConfig{Dialect: d})
	case len(f) == 3 && f[0] == "redis":
		return redis.New(goredis.NewClient(&goredis.Options{Addr: f[1]}), redis.Config{Prefix: f[2]})
	}
	return nil, fmt.Errorf("bad spec %q", spec)
}

// gateway is a stand-in payment gateway honouring Idempotency-Key, as real ones do: the same key returns the
// first charge. It records every call's key.
type gateway struct {
	gatewayClient
	mu   sync.Mutex
	seen []string
	ids  map[string]string // charge id by idempotency key
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{ids: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		g.mu.Lock()
		defer g.mu.Unlock()
		g.seen = append(g.seen, key)
		id, ok := g.ids[key]
		if !ok {
			id = fmt.Sprintf("ch_%d", len(g.ids)+1)
			g.ids[key] = id
		}
		_, _ = io.WriteString(w, id)
	}))
	t.Cleanup(srv.Close)
	g.url = srv.URL
	return g
}

func (g *gateway) keys() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.seen...)
}

func (g *gateway) charges() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.ids)
}

type gatewayClient struct{ url string }

// charge asks the gateway to charge under key and returns the charge id.
func (c *gatewayClient) charge(ctx context.Context, key string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/charges", strings.NewReader("{}"))
	if err != nil {
		return "", err
	}
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("gateway: %s %s: %v", resp.Status, b, err)
	}
	return string(b), nil
}
