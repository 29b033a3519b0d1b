package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

func prefill(db *sqlx.DB, d dialect.Dialect, n int) error {
	ctx := context.Background()
	ob, err := outbox.New(outbox.Config{Dialect: d, DisableNotify: true})
	if err != nil {
		return err
	}
	payload := []byte(strings.Repeat("x", 100))
	for start := 0; start < n; start += 1000 {
		msgs := make([]outbox.Message, 0, 1000)
		for i := start; i < min(n, start+1000); i++ {
			msgs = append(msgs, outbox.Message{Topic: "bench", Key: strconv.Itoa(i), Payload: payload})
		}
		if err := ob.Enqueue(ctx, db, msgs...); err != nil {
			return err
		}
	}
	// Fresh statistics, as a steady-state outbox would have.
	q := "ANALYZE TABLE txbox_outbox"
	if d == dialect.Postgres {
		q = "ANALYZE txbox_outbox"
	}
	_, err = db.ExecContext(ctx, q)
	return err
}

// benchDrainRelay drains n prefilled rows with Relay.Drain to a counting publisher; returns msg/s.
func benchDrainRelay(db *sqlx.DB, d dialect.Dialect, n, workers int) (float64, error) {
	if err := prefill(db, d, n); err != nil {
		return 0, err
	}
	var count atomic.Int64
	pub := relay.PublisherFunc(func(context.Context, outbox.Record) error { count.Add(1); return nil })
	r, err := relay.New(db, relay.Config{Dialect: d, Publisher: pub, Workers: workers, BatchSize: *batch})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	got, err := r.Drain(context.Background())
	el := time.Since(start)
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("relay drained %d of %d", got, n)
	}
	return float64(n) / el.Seconds(), nil
}

// benchDrainRaw is the raw limit: each worker loops BEGIN; SELECT ... ORDER BY id LIMIT 500 FOR UPDATE SKIP
// LOCKED; count; DELETE ... WHERE id IN (...); COMMIT until nothing is left. Deadlocks (MariaDB) are retried.
func benchDrainRaw(db *sqlx.DB, d dialect.Dialect, n, workers int) (float64, error) {
	if err := prefill(db, d, n); err != nil {
		return 0, err
	}
	ctx := context.Background()
	sel := d.Rebind("SELECT id, topic, msg_key, tag, payload, headers FROM txbox_outbox ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED")
	var count atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for {
				got, err := rawBatch(ctx, db, d, sel)
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
				count.Add(int64(got))
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if int(count.Load()) != n {
		return 0, fmt.Errorf("raw loop drained %d of %d", count.Load(), n)
	}
	return float64(n) / el.Seconds(), nil
}

func rawBatch(ctx context.Context, db *sqlx.DB, d dialect.Dialect, sel string) (int, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck
	rows, err := tx.QueryContext(ctx, sel, *batch)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		var topic, key, tag string
		var payload []byte
		var headers sql.NullString
		if err := rows.Scan(&id, &topic, &key, &tag, &payload, &headers); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if len(ids) == 0 {
		return 0, tx.Commit()
	}
	var del string
	if d == dialect.Postgres {
		b, _ := json.Marshal(ids)
		del = "DELETE FROM txbox_outbox WHERE id = ANY('{" + strings.Trim(string(b), "[]") + "}'::bigint[])"
	} else {
		b, _ := json.Marshal(ids)
		del = "DELETE FROM txbox_outbox WHERE id IN (" + strings.Trim(string(b), "[]") + ")"
	}
	if _, err := tx.ExecContext(ctx, del); err != nil {
		return 0, err
	}
	return len(ids), tx.Commit()
}
