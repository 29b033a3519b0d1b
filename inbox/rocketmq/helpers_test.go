package rocketmq_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	relayrmq "github.com/txbox/txbox/relay/rocketmq"
)

func TestMain(m *testing.M) { testdb.Main(m, rmqtest.LeakOptions()...) }

// target returns the named database target.
func target(t testing.TB, name string) testdb.Target {
	for _, tg := range testdb.Targets {
		if tg.Name == name {
			return tg
		}
	}
	t.Fatalf("no target %s", name)
	return testdb.Target{}
}

// bed is one test's broker topic, consumer group, database with an effects table, inbox and publisher.
type bed struct {
	t     testing.TB
	b     rmqtest.Broker
	db    *testdb.DB
	ib    *inbox.Inbox
	topic string
	group string
	pub   *relayrmq.Publisher
}

func newBed(t testing.TB, tg testdb.Target, queues int, icfg inbox.Config) *bed {
	t.Helper()
	b := rmqtest.Get(t)
	db := testdb.Open(t, tg)
	ddl := `CREATE TABLE effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(255) NOT NULL,
		sk VARCHAR(64) NOT NULL DEFAULT '', seq INT NOT NULL DEFAULT 0, attempt INT NOT NULL DEFAULT 0)`
	if tg.Dialect.Name() == "postgres" {
		ddl = `CREATE TABLE effects (id BIGSERIAL PRIMARY KEY, k TEXT NOT NULL, sk TEXT NOT NULL DEFAULT '',
			seq INT NOT NULL DEFAULT 0, attempt INT NOT NULL DEFAULT 0)`
	}
	if _, err := db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
	group := b.Group(t)
	icfg.Dialect = tg.Dialect
	icfg.Consumer = group
	ib, err := inbox.New(db.DB, icfg)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := relayrmq.New(relayrmq.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "P")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	return &bed{t: t, b: b, db: db, ib: ib, topic: b.Topic(t, queues), group: group, pub: pub}
}

// consumer starts a Consumer on the bed's topic and group; mod adjusts the config. It is shut down when the
// test ends (Shutdown is idempotent, so tests may shut it down earlier).
func (e *bed) consumer(mod func(*rocketmq.Config), h rocketmq.Handler) *rocketmq.Consumer {
	e.t.Helper()
	cfg := rocketmq.Config{NameServers: e.b.NameServers(), Group: e.group, Topic: e.topic, FromFirstOffset: true}
	if mod != nil {
		mod(&cfg)
	}
	c, err := rocketmq.New(e.ib, cfg, h)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Shutdown returns its first result again; a test that cut handlers short checked that itself.
		if err := c.Shutdown(ctx); err != nil && !errors.Is(err, rocketmq.ErrShutdown) {
			e.t.Errorf("shutdown: %v", err)
		}
	})
	return c
}

// publish sends one record straight through the publisher (no outbox table), as the relay would.
func (e *bed) publish(id int64, key, shardingKey string, payload string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := e.pub.Publish(ctx, outbox.Record{ID: id, Message: outbox.Message{
		Topic: e.topic, Key: key, ShardingKey: shardingKey, Payload: []byte(payload)}})
	if err != nil {
		e.t.Fatalf("publish %s: %v", key, err)
	}
}

// sendRaw sends msg with a plain rocketmq-client-go producer, as producers that are not txbox do, and returns
// its message id.
func (e *bed) sendRaw(msg *primitive.Message) string {
	e.t.Helper()
	return e.b.SendRaw(e.t, msg)[0]
}

// effect records a message's business effect in the handler's transaction.
func effect(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message, seq int) error {
	_, err := tx.ExecContext(ctx, tx.Rebind("INSERT INTO effects (k, sk, seq, attempt) VALUES (?, ?, ?, ?)"),
		m.Key, m.ShardingKey, seq, m.Attempt)
	return err
}

// effects returns how many effects each key has.
func (e *bed) effects() map[string]int {
	e.t.Helper()
	var rows []struct {
		K string `db:"k"`
		N int    `db:"n"`
	}
	if err := e.db.Select(&rows, "SELECT k, COUNT(*) AS n FROM effects GROUP BY k"); err != nil {
		e.t.Fatal(err)
	}
	out := make(map[string]int, len(rows))
	for _, r := range rows {
		out[r.K] = r.N
	}
	return out
}

func (e *bed) countEffects() int {
	e.t.Helper()
	var n int
	if err := e.db.Get(&n, "SELECT COUNT(*) FROM effects"); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := 5 * time.Millisecond; !cond(); wait = min(wait*2, 200*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(wait)
	}
}

// exactlyOnce fails the test unless every key in want has exactly one effect and no other key has any.
func (e *bed) exactlyOnce(want []string) {
	e.t.Helper()
	got := e.effects()
	bad := 0
	for _, k := range want {
		if got[k] != 1 {
			if bad < 10 {
				e.t.Errorf("key %q has %d effects, want 1", k, got[k])
			}
			bad++
		}
		delete(got, k)
	}
	for k, n := range got {
		e.t.Errorf("unexpected key %q with %d effects", k, n)
	}
	if bad > 0 {
		e.t.Fatalf("%d of %d keys do not have exactly one effect", bad, len(want))
	}
}

// attempts counts handler runs per key (including rolled-back ones), for tests that assert redeliveries.
type attempts struct {
	mu sync.Mutex
	n  map[string]int
}

func (a *attempts) inc(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == nil {
		a.n = map[string]int{}
	}
	a.n[key]++
	return a.n[key]
}

func (a *attempts) get(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[key]
}

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}
