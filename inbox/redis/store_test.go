package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/redis"
	"github.com/txbox/txbox/internal/effectstest"
	"github.com/txbox/txbox/internal/testdb"
)

func TestMain(m *testing.M) { effectstest.MaybeChild(); testdb.Main(m) }

// server returns a client of the Redis server TXBOX_REDIS_ADDR names and a key prefix of the test's own. Without
// the variable the test is skipped, or fails under CI.
func server(t *testing.T) (*goredis.Client, string, string) {
	t.Helper()
	addr := os.Getenv("TXBOX_REDIS_ADDR")
	if addr == "" {
		msg := "TXBOX_REDIS_ADDR is not set: start Redis with `make services` and export it with " +
			"`eval \"$(scripts/services.sh env)\"`"
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and %s", msg)
		}
		t.Skip(msg)
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 32})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("ping Redis at %s: %v", addr, err)
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return c, addr, "txbox-test-" + hex.EncodeToString(b)
}

func newStore(t *testing.T, c *goredis.Client, prefix string) *redis.Store {
	t.Helper()
	st, err := redis.New(c, redis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestConformance runs the EffectStore conformance suite on the Redis store.
func TestConformance(t *testing.T) {
	c, addr, prefix := server(t)
	effectstest.Run(t, effectstest.Target{Store: newStore(t, c, prefix), Spec: effectstest.RedisSpec(addr, prefix)})
}

// Records expire Retention after their last change; parked records do not expire until replayed or dropped.
func TestRecordsExpireWithRetention(t *testing.T) {
	c, _, prefix := server(t)
	ctx := t.Context()
	fx, err := inbox.NewEffects(newStore(t, c, prefix), inbox.EffectsConfig{Consumer: "c", Retention: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	d := inbox.Delivery{Key: "k", Payload: []byte("p")}
	if res, err := fx.Run(ctx, d, func(context.Context, *inbox.Claim) ([]byte, error) { return nil, nil }); res != inbox.Processed || err != nil {
		t.Fatalf("Run = %v, %v", res, err)
	}
	key := prefix + ":{1:c}:fx:k"
	ttl := c.PTTL(ctx, key).Val()
	if ttl <= 2*time.Hour-time.Minute || ttl > 2*time.Hour {
		t.Errorf("TTL of a completed record = %v, want about 2h (Retention)", ttl)
	}
	if _, err := fx.Park(ctx, inbox.Delivery{Key: "p", Payload: []byte("p")}, errors.New("x")); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, prefix+":{1:c}:fx:p").Val(); ttl != -1 {
		t.Errorf("TTL of a parked record = %v, want none (-1)", ttl)
	}
	if err := fx.DropDead(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, prefix+":{1:c}:fx:p").Val(); ttl <= time.Hour {
		t.Errorf("TTL of a dropped record = %v, want Retention again", ttl)
	}
	if n, err := fx.Purge(ctx); n != 0 || err != nil {
		t.Errorf("Purge = %d, %v; want 0, nil (records expire by themselves)", n, err)
	}
}

// Consumer and key never run together: ("a:b", "c") and ("a", "b:c") are two records.
func TestKeysAreUnambiguous(t *testing.T) {
	c, _, prefix := server(t)
	st := newStore(t, c, prefix)
	for _, ck := range [][2]string{{"a:b", "c"}, {"a", "b:c"}, {"a}", "{b"}} {
		fx, err := inbox.NewEffects(st, inbox.EffectsConfig{Consumer: ck[0]})
		if err != nil {
			t.Fatal(err)
		}
		res, err := fx.Run(t.Context(), inbox.Delivery{Key: ck[1]}, func(context.Context, *inbox.Claim) ([]byte, error) { return nil, nil })
		if res != inbox.Processed || err != nil {
			t.Errorf("Run(%q, %q) = %v, %v; want Processed (a record of its own)", ck[0], ck[1], res, err)
		}
	}
}

func TestNewValidates(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, p := range []string{"has space", "brace{", string(make([]byte, 65))} {
		if _, err := redis.New(c, redis.Config{Prefix: p}); !errors.Is(err, inbox.ErrInvalidConfig) {
			t.Errorf("New(Prefix %q) = %v, want ErrInvalidConfig", p, err)
		}
	}
	if _, err := redis.New(nil, redis.Config{}); !errors.Is(err, inbox.ErrInvalidConfig) {
		t.Errorf("New(nil client) = %v, want ErrInvalidConfig", err)
	}
	st, err := redis.New(c, redis.Config{})
	if err != nil {
		t.Fatal(err)
	}
	fx, err := inbox.NewEffects(st, inbox.EffectsConfig{Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fx.Check(t.Context()); err == nil {
		t.Error("Check against a port nothing listens on succeeded")
	}
}
