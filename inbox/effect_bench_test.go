package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/redis"
	"github.com/txbox/txbox/internal/testdb"
)

// BenchmarkEffects measures what recording a message costs with the idempotency records of Effects — Begin,
// then Complete with a 16-byte result, no effect in between — on the SQL store and on Redis, beside the
// transactional inbox's Process with a handler that writes nothing (the dedup row alone), in one run: b.N
// messages per mode, 4 workers, 10% of messages redeliver an earlier key (a redelivery that finds the key busy
// counts as answered, as one that finds it completed), the modes interleaved in ten rounds so
// that background load hits them alike. Each SQL target runs its own round of Redis, so every ratio compares
// figures measured side by side. It reports inbox-msg/s, sqlfx-msg/s, redisfx-msg/s and the ratios
// sqlfx/inbox and redisfx/inbox. Run (make bench-effects):
//
//	go test -run '^$' -bench BenchmarkEffects -benchtime 2000x -count 6 ./inbox/
func BenchmarkEffects(b *testing.B) {
	addr := os.Getenv("TXBOX_REDIS_ADDR")
	if addr == "" {
		b.Skip("TXBOX_REDIS_ADDR is not set: start the services with `make services` and export their variables")
	}
	rc := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: 16})
	defer rc.Close()
	for _, tg := range testdb.Targets {
		b.Run(tg.Name, func(b *testing.B) {
			db := testdb.Open(b, tg)
			b.Logf("driver %s, DSN %s; Redis %s", tg.Driver, redactDSN(db.DSN), addr)
			benchEffects(b, db, rc)
		})
	}
}

func benchEffects(b *testing.B, db *testdb.DB, rc *goredis.Client) {
	ctx := context.Background()
	run := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: run})
	if err != nil {
		b.Fatal(err)
	}
	sqlStore, err := inbox.NewSQLEffectStore(db.DB, inbox.SQLEffectStoreConfig{Dialect: db.Dialect})
	if err != nil {
		b.Fatal(err)
	}
	redisStore, err := redis.New(rc, redis.Config{Prefix: "txbox-bench"})
	if err != nil {
		b.Fatal(err)
	}
	sqlFx, err := inbox.NewEffects(sqlStore, inbox.EffectsConfig{Consumer: run})
	if err != nil {
		b.Fatal(err)
	}
	redisFx, err := inbox.NewEffects(redisStore, inbox.EffectsConfig{Consumer: run, Retention: time.Hour, Lease: time.Minute})
	if err != nil {
		b.Fatal(err)
	}

	// Message i is order i, except every tenth, which redelivers the order five messages earlier.
	orders := make([]int, b.N)
	for i := range orders {
		orders[i] = i
		if i%10 == 9 {
			orders[i] = i - 5
		}
	}
	delivery := func(order int) inbox.Delivery {
		return inbox.Delivery{Key: inbox.Key(fmt.Sprint(order), "payment"), Payload: []byte(fmt.Sprintf(`{"amount":%d}`, order))}
	}
	viaInbox := func(ctx context.Context, order int) error {
		_, err := ib.Process(ctx, delivery(order), func(context.Context, *sqlx.Tx) error { return nil })
		return err
	}
	result := []byte("ch_0123456789abc")
	viaEffects := func(fx *inbox.Effects) func(context.Context, int) error {
		return func(ctx context.Context, order int) error {
			c, err := fx.Begin(ctx, delivery(order))
			if errors.Is(err, inbox.ErrBusy) {
				return nil // the earlier delivery of the key is still running: the broker would deliver it later
			}
			if err != nil || c.Status != inbox.EffectAcquired {
				return err
			}
			return c.Complete(ctx, result)
		}
	}
	runMode := func(part []int, f func(context.Context, int) error) time.Duration {
		return runWorkers(ctx, b, part, f)
	}

	b.ResetTimer()
	var inboxTime, sqlTime, redisTime time.Duration
	const rounds = 10
	for r := range rounds {
		part := orders[r*len(orders)/rounds : (r+1)*len(orders)/rounds]
		inboxTime += runMode(part, viaInbox)
		sqlTime += runMode(part, viaEffects(sqlFx))
		redisTime += runMode(part, viaEffects(redisFx))
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(b.N) / d.Seconds() }
	b.ReportMetric(rate(inboxTime), "inbox-msg/s")
	b.ReportMetric(rate(sqlTime), "sqlfx-msg/s")
	b.ReportMetric(rate(redisTime), "redisfx-msg/s")
	b.ReportMetric(rate(sqlTime)/rate(inboxTime), "sqlfx/inbox")
	b.ReportMetric(rate(redisTime)/rate(inboxTime), "redisfx/inbox")
}
