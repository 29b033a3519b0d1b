package rocketmq_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/metrics"
	"github.com/txbox/txbox/migrations"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	relayrmq "github.com/txbox/txbox/relay/rocketmq"
)

// TestPrefixedInstallationsStayApart runs the whole path (outbox → relay → RocketMQ → inbox) for two
// installations with non-default prefixes in one database, beside the default one that testdb migrated. Both
// enqueue the same business keys under the same consumer name: each installation publishes only its own rows,
// records only its own keys (neither sees the other's as a duplicate), and the default tables stay empty.
func TestPrefixedInstallationsStayApart(t *testing.T) {
	const n = 200
	b := rmqtest.Get(t)
	for _, tg := range testdb.Targets {
		t.Run(tg.Name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			db := testdb.Open(t, tg)
			effects := `CREATE TABLE effects (prefix VARCHAR(32) NOT NULL, k VARCHAR(255) NOT NULL)`
			if _, err := db.Exec(effects); err != nil {
				t.Fatal(err)
			}
			want := keys("same", n)
			reg := prometheus.NewRegistry()
			for _, prefix := range []string{"billing", "shop"} {
				if err := migrations.Up(ctx, db.DB.DB, db.Dialect, migrations.WithPrefix(prefix)); err != nil {
					t.Fatalf("migrate %s: %v", prefix, err)
				}
				if err := metrics.RegisterBacklog(reg, db, db.Dialect, prefix); err != nil {
					t.Fatalf("backlog metrics of %s beside another installation's: %v", prefix, err)
				}
			}
			for _, prefix := range []string{"billing", "shop"} {
				topic := b.Topic(t, 4)
				ob, err := outbox.New(outbox.Config{Dialect: db.Dialect, Prefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				tx, err := db.BeginTxx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i, k := range want {
					m := outbox.Message{Topic: topic, Key: k, Payload: []byte(prefix + k)}
					if i%3 == 0 {
						m.ShardingKey = fmt.Sprint("s", i%5)
					}
					if err := ob.Enqueue(ctx, tx, m); err != nil {
						t.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}

				ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Prefix: prefix, Consumer: "same-consumer"})
				if err != nil {
					t.Fatal(err)
				}
				if err := ib.Check(ctx); err != nil {
					t.Fatal(err)
				}
				c, err := rocketmq.New(ib, rocketmq.Config{NameServers: b.NameServers(), Group: b.Group(t), Topic: topic,
					FromFirstOffset: true}, func(ctx context.Context, tx *sqlx.Tx, m *rocketmq.Message) error {
					_, err := tx.ExecContext(ctx, tx.Rebind("INSERT INTO effects (prefix, k) VALUES (?, ?)"), prefix, m.Key)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = c.Close() })

				pub, err := relayrmq.New(relayrmq.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "P")})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = pub.Close() })
				r, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Prefix: prefix, Publisher: pub})
				if err != nil {
					t.Fatal(err)
				}
				if got, err := r.Drain(ctx); err != nil || got != n {
					t.Fatalf("%s relay drained %d (%v), want its own %d rows", prefix, got, err, n)
				}
			}
			count := func(q string) int {
				t.Helper()
				var c int
				if err := db.Get(&c, q); err != nil {
					t.Fatal(err)
				}
				return c
			}
			waitFor(t, 2*time.Minute, "every effect of both installations", func() bool {
				return count("SELECT COUNT(*) FROM effects") >= 2*n
			})
			for _, prefix := range []string{"billing", "shop"} {
				if c := count("SELECT COUNT(DISTINCT k) FROM effects WHERE prefix = '" + prefix + "'"); c != n {
					t.Errorf("%s: %d keys have effects, want %d", prefix, c, n)
				}
				if c := count("SELECT COUNT(*) FROM " + prefix + "_inbox"); c != n {
					t.Errorf("%s_inbox holds %d keys, want %d", prefix, c, n)
				}
				if c := count("SELECT COUNT(*) FROM " + prefix + "_outbox"); c != 0 {
					t.Errorf("%s_outbox holds %d rows after its drain", prefix, c)
				}
			}
			if c := count("SELECT COUNT(*) FROM effects"); c != 2*n {
				t.Errorf("%d effects, want %d (one per key and installation)", c, 2*n)
			}
			for _, tb := range []string{"txbox_outbox", "txbox_inbox", "txbox_outbox_dead", "txbox_inbox_dead"} {
				if c := count("SELECT COUNT(*) FROM " + tb); c != 0 {
					t.Errorf("the default installation's %s holds %d rows", tb, c)
				}
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatalf("gather two installations' backlog gauges: %v", err)
			}
			seen := 0
			for _, mf := range mfs {
				if mf.GetName() == "txbox_inbox_keys" {
					seen += len(mf.GetMetric())
				}
			}
			if seen != 2 {
				t.Errorf("txbox_inbox_keys has %d series, want one per installation", seen)
			}
		})
	}
}
