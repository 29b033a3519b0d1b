package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

const drainBatch = 500

// runDrain is case (b): -rows prefilled messages (100-byte payloads, no sharding key) drained by workers
// to a publisher that counts them:
//
//	txbox       relay.Drain with Workers and BatchSize 500: each batch commits its claim (a lease) before
//	            publishing, then deletes the published rows in a second transaction
//	raw         the hand-written limit: each worker loops BEGIN; SELECT … WHERE part = -1 ORDER BY id LIMIT 500
//	            FOR UPDATE SKIP LOCKED; count; DELETE by primary key; COMMIT, on raw_outbox, a copy of
//	            txbox_outbox (same columns and indexes) with the same rows
//	watermill   watermill-sql v4's queue schema (DELETE on ack), one subscription per worker, batches of 500,
//	            PollInterval 10ms (txbox's MinPollInterval)
//
// The raw loop holds its row locks while it publishes and commits once per batch; the relay commits twice per
// batch so that a publish outlasting a crash, a lost connection or a lock timeout cannot leave rows locked or
// published twice by two relays. That is the work a relay must do and the raw loop is spared: the limit.
func runDrain(cs []column, workers int) bool {
	title := fmt.Sprintf("drain %d rows, %d worker(s), batches of %d", *rows, workers, drainBatch)
	return runCase(cs, title, "msg/s", 0, func(c column, db *sqlx.DB) ([]variant, error) {
		return drainVariants(c, db, workers)
	}, []ratio{{"txbox", "raw", map[int]float64{1: 0.9, 4: 1.0}[workers]}, {"txbox", "watermill", 3.0}})
}

// series is a FROM item of the numbers 1..n as column g.
func series(d dialect.Dialect, n int) string {
	if d == dialect.Postgres {
		return "generate_series(1, " + strconv.Itoa(n) + ") AS s(g)"
	}
	digits := "(SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4" +
		" UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
	var from, sum []string
	for i, m := 0, 1; m < n; i, m = i+1, m*10 {
		from = append(from, digits+" AS d"+strconv.Itoa(i))
		sum = append(sum, strconv.Itoa(m)+" * d"+strconv.Itoa(i)+".n")
	}
	return "(SELECT 1 + " + strings.Join(sum, " + ") + " AS g FROM " + strings.Join(from, " CROSS JOIN ") +
		" HAVING g <= " + strconv.Itoa(n) + ") AS s"
}

func drainVariants(c column, db *sqlx.DB, workers int) ([]variant, error) {
	ctx := context.Background()
	d := c.d
	like, payload, now, cast := "CREATE TABLE raw_outbox LIKE txbox_outbox", "REPEAT('x', 100)", "UTC_TIMESTAMP(6)", "g"
	if d == dialect.Postgres {
		like, payload, now, cast = "CREATE TABLE raw_outbox (LIKE txbox_outbox INCLUDING ALL)", "decode(repeat('78', 100), 'hex')", "now()", "g::text"
	}
	if _, err := db.ExecContext(ctx, like); err != nil {
		return nil, err
	}
	fill := func(table string) error {
		_, err := db.ExecContext(ctx, "INSERT INTO "+table+" (part, topic, msg_key, tag, sharding_key, payload, attempts,"+
			" available_at, created_at) SELECT -1, 'bench', "+cast+", '', '', "+payload+", 0, "+now+", "+now+" FROM "+series(d, *rows))
		if err != nil {
			return fmt.Errorf("fill %s: %w", table, err)
		}
		return analyze(db, d, table)
	}
	schema, offsets := watermillQueue(d)
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromStdSQL(db.DB), wsql.SubscriberConfig{
		SchemaAdapter: schema, OffsetsAdapter: offsets, PollInterval: 10 * time.Millisecond,
	}, nil)
	if err != nil {
		return nil, err
	}
	if err := sub.SubscribeInitialize("bench"); err != nil {
		return nil, fmt.Errorf("watermill: create table: %w", err)
	}
	_ = sub.Close()
	wtable := "watermill_bench"
	if d == dialect.Postgres {
		wtable = `"watermill_bench"`
	}

	relayRun := func() (float64, error) {
		if err := fill("txbox_outbox"); err != nil {
			return 0, err
		}
		var count atomic.Int64
		pub := relay.PublisherFunc(func(context.Context, outbox.Record) error { count.Add(1); return nil })
		r, err := relay.New(db, relay.Config{Dialect: d, Publisher: pub, Workers: workers, BatchSize: drainBatch})
		if err != nil {
			return 0, err
		}
		start := time.Now()
		got, err := r.Drain(ctx)
		el := time.Since(start)
		if err != nil {
			return 0, err
		}
		if got != *rows || count.Load() != int64(*rows) {
			return 0, fmt.Errorf("relay drained %d of %d", got, *rows)
		}
		return float64(*rows) / el.Seconds(), nil
	}
	rawRun := func() (float64, error) {
		if err := fill("raw_outbox"); err != nil {
			return 0, err
		}
		return rawDrain(db, d, workers)
	}
	wmRun := func() (float64, error) {
		_, err := db.ExecContext(ctx, "INSERT INTO "+wtable+" (uuid, payload) SELECT "+cast+", "+payload+" FROM "+series(d, *rows))
		if err != nil {
			return 0, fmt.Errorf("fill %s: %w", wtable, err)
		}
		if err := analyze(db, d, wtable); err != nil {
			return 0, err
		}
		return watermillDrain(db, schema, offsets, wtable, workers)
	}
	return []variant{{"txbox", relayRun}, {"raw", rawRun}, {"watermill", wmRun}}, nil
}

func rawDrain(db *sqlx.DB, d dialect.Dialect, workers int) (float64, error) {
	ctx := context.Background()
	now := "UTC_TIMESTAMP(6)"
	if d == dialect.Postgres {
		now = "now()"
	}
	sel := d.Rebind("SELECT id, part, topic, msg_key, tag, sharding_key, payload, headers, attempts, created_at FROM raw_outbox" +
		" WHERE part = -1 AND available_at <= " + now + " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED")
	var count atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for {
				got, err := rawBatch(ctx, db, d, sel, &count)
				if errors.Is(d.InterpretError(err), dialect.ErrRetryable) {
					continue
				}
				if err != nil {
					errs[w] = err
					return
				}
				if got == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if int(count.Load()) != *rows {
		return 0, fmt.Errorf("raw loop drained %d of %d", count.Load(), *rows)
	}
	return float64(*rows) / el.Seconds(), nil
}

func rawBatch(ctx context.Context, db *sqlx.DB, d dialect.Dialect, sel string, count *atomic.Int64) (int, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	rs, err := tx.QueryContext(ctx, sel, drainBatch)
	if err != nil {
		return 0, err
	}
	var ids []string
	for rs.Next() {
		var (
			id, attempts, part int64
			topic, key, tag    string
			sk                 string
			payload            []byte
			headers            sql.NullString
			created            any
		)
		if err := rs.Scan(&id, &part, &topic, &key, &tag, &sk, &payload, &headers, &attempts, &created); err != nil {
			rs.Close()
			return 0, err
		}
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	if err := rs.Err(); err != nil {
		return 0, err
	}
	rs.Close()
	if len(ids) == 0 {
		return 0, tx.Commit()
	}
	del := "DELETE FROM raw_outbox WHERE part = -1 AND id IN (" + strings.Join(ids, ", ") + ")"
	if d == dialect.Postgres {
		del = "DELETE FROM raw_outbox WHERE id = ANY('{" + strings.Join(ids, ",") + "}'::bigint[])"
	}
	if _, err := tx.ExecContext(ctx, del); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	count.Add(int64(len(ids)))
	return len(ids), nil
}

func watermillQueue(d dialect.Dialect) (wsql.SchemaAdapter, wsql.OffsetsAdapter) {
	if d == dialect.Postgres {
		return wsql.PostgreSQLQueueSchema{SubscribeBatchSize: drainBatch, GeneratePayloadType: func(string) string { return "BYTEA" }},
			wsql.PostgreSQLQueueOffsetsAdapter{DeleteOnAck: true}
	}
	return wsql.MySQLQueueSchema{SubscribeBatchSize: drainBatch, GeneratePayloadType: func(string) string { return "LONGBLOB" }},
		wsql.MySQLQueueOffsetsAdapter{DeleteOnAck: true}
}

// watermillDrain consumes -rows messages through workers subscriptions, acknowledging each.
func watermillDrain(db *sqlx.DB, schema wsql.SchemaAdapter, offsets wsql.OffsetsAdapter, table string, workers int) (float64, error) {
	sub, err := wsql.NewSubscriber(wsql.BeginnerFromStdSQL(db.DB), wsql.SubscriberConfig{
		SchemaAdapter: schema, OffsetsAdapter: offsets, PollInterval: 10 * time.Millisecond,
	}, nil)
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var count atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	start := time.Now()
	for range workers {
		ch, err := sub.Subscribe(ctx, "bench")
		if err != nil {
			return 0, err
		}
		go func() {
			for m := range ch {
				m.Ack()
				if count.Add(1) == int64(*rows) {
					once.Do(func() { close(done) })
				}
			}
		}()
	}
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		return 0, fmt.Errorf("watermill consumed %d of %d in 10 minutes", count.Load(), *rows)
	}
	// The last batch's acknowledgement commits after its last message is acknowledged: wait until the table is
	// empty, so that the figure includes every delete, as the others' do.
	for {
		var left int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&left); err != nil {
			return 0, err
		}
		if left == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	return float64(*rows) / time.Since(start).Seconds(), nil
}
