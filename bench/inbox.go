package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
)

const inboxWorkers = 4

// runInbox is case (c): -deliveries deliveries, every tenth a redelivery of the key five before it (10%
// duplicates), taken by 4 workers; the handler upserts an order row:
//
//	txbox       inbox.Process per delivery
//	hand        the hand-written limit: BEGIN; INSERT … ON CONFLICT DO NOTHING (MySQL: INSERT IGNORE) of the same
//	            row (consumer, key, SHA-256 of the payload, now) into hand_inbox, a copy of txbox_inbox; rows
//	            affected 0 → duplicate; else the handler; COMMIT
//	batch       inbox.ProcessBatch, each worker taking up to -inbox-batch deliveries at a time
//
// hand is also the raw one-transaction-per-message upsert the batch inbox is measured against.
func runInbox(cs []column) bool {
	title := fmt.Sprintf("inbox, %d deliveries (10%% duplicates), %d workers, upsert handler; batch = ProcessBatch of %d",
		*deliveries, inboxWorkers, *batchSize)
	return runCase(cs, title, "msg/s", *deliveries, inboxVariants, []ratio{{"txbox", "hand", 0.95}, {"batch", "hand", 2.0}})
}

func inboxVariants(c column, db *sqlx.DB) ([]variant, error) {
	ctx := context.Background()
	d := c.d
	like := "CREATE TABLE hand_inbox LIKE txbox_inbox"
	if d == dialect.Postgres {
		like = "CREATE TABLE hand_inbox (LIKE txbox_inbox INCLUDING ALL)"
	}
	ddl := []string{like}
	for _, t := range []string{"orders_txbox", "orders_hand", "orders_batch"} {
		ddl = append(ddl, "CREATE TABLE "+t+" (order_id VARCHAR(64) PRIMARY KEY, amount BIGINT NOT NULL, status VARCHAR(16) NOT NULL)")
	}
	for _, q := range ddl {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, err
		}
	}
	upsert := func(table string) (string, error) {
		return d.UpsertSQL(dialect.Upsert{Table: table, Columns: []string{"order_id", "amount", "status"},
			Conflict: []string{"order_id"}, Update: []string{"amount", "status"}}, 1)
	}
	upTxbox, err := upsert("orders_txbox")
	if err != nil {
		return nil, err
	}
	upHand, _ := upsert("orders_hand")
	upBatch, _ := upsert("orders_batch")
	dedup := "INSERT INTO hand_inbox (consumer, msg_key, fingerprint, received_at) VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING"
	if d == dialect.MySQL {
		dedup = "INSERT IGNORE INTO hand_inbox (consumer, msg_key, fingerprint, received_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))"
	}
	ib, err := inbox.New(db, inbox.Config{Dialect: d, Consumer: "bench"})
	if err != nil {
		return nil, err
	}
	// Every run uses keys of its own (a run number in the key), so that each run sees the same mix.
	run := 0
	deliveriesOf := func() []inbox.Delivery {
		run++
		ds := make([]inbox.Delivery, *deliveries)
		for i := range ds {
			k := i
			if i%10 == 9 {
				k = i - 5
			}
			key := "r" + strconv.Itoa(run) + "-" + strconv.Itoa(k)
			ds[i] = inbox.Delivery{Key: key, Payload: []byte(`{"order":"` + key + `","amount":1999}`)}
		}
		return ds
	}
	perDelivery := func(one func(d inbox.Delivery) error) func() (float64, error) {
		return func() (float64, error) {
			ds := deliveriesOf()
			return fanOut(len(ds), 1, func(i, _ int) error { return one(ds[i]) })
		}
	}
	txboxRun := perDelivery(func(dv inbox.Delivery) error {
		_, err := ib.Process(ctx, dv, func(ctx context.Context, tx *sqlx.Tx) error {
			_, err := tx.ExecContext(ctx, upTxbox, dv.Key, 1999, "paid")
			return err
		})
		return err
	})
	handRun := perDelivery(func(dv inbox.Delivery) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // no-op after Commit
		sum := sha256.Sum256(dv.Payload)
		res, err := tx.ExecContext(ctx, dedup, "bench", dv.Key, sum[:])
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // duplicate: nothing to do (the rollback ends the transaction)
		}
		if _, err := tx.ExecContext(ctx, upHand, dv.Key, 1999, "paid"); err != nil {
			return err
		}
		return tx.Commit()
	})
	batchRun := func() (float64, error) {
		ds := deliveriesOf()
		return fanOut(len(ds), *batchSize, func(i, n int) error {
			for _, r := range ib.ProcessBatch(ctx, ds[i:i+n], func(ctx context.Context, tx *sqlx.Tx, dv inbox.Delivery) error {
				_, err := tx.ExecContext(ctx, upBatch, dv.Key, 1999, "paid")
				return err
			}) {
				if r.Err != nil {
					return r.Err
				}
			}
			return nil
		})
	}
	return []variant{{"txbox", txboxRun}, {"hand", handRun}, {"batch", batchRun}}, nil
}

// fanOut hands out [0, total) in chunks of up to size to inboxWorkers goroutines and returns items per second.
func fanOut(total, size int, do func(i, n int) error) (float64, error) {
	var mu sync.Mutex
	next := 0
	take := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		i := next
		n := min(size, total-i)
		next += n
		return i, n
	}
	errs := make([]error, inboxWorkers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range inboxWorkers {
		wg.Go(func() {
			for {
				i, n := take()
				if n <= 0 {
					return
				}
				if err := do(i, n); err != nil {
					errs[w] = err
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
	return float64(total) / el.Seconds(), nil
}
