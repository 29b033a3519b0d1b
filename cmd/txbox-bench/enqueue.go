package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
)

// benchEnqueue runs n short business transactions (one INSERT) with and without one outbox message each,
// interleaved in blocks so that both see the same machine load, and returns both rates in tx/s.
func benchEnqueue(db *sqlx.DB, d dialect.Dialect, n int) (with, without float64, err error) {
	ctx := context.Background()
	ddl := "CREATE TABLE bench_orders (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL, amount BIGINT NOT NULL)"
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return 0, 0, err
	}
	ob, err := outbox.New(outbox.Config{Dialect: d})
	if err != nil {
		return 0, 0, err
	}
	insert := d.Rebind("INSERT INTO bench_orders (id, customer, amount) VALUES (?, ?, ?)")
	payload := []byte(`{"order":12345,"customer":"c-42","amount":1999,"currency":"EUR"}`)
	var tWith, tWithout time.Duration
	id := int64(0)
	one := func(msg bool) error {
		id++
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, insert, id, "c-42", 1999); err != nil {
			_ = tx.Rollback()
			return err
		}
		if msg {
			key := fmt.Sprintf("%d/order-created", id)
			if err := ob.Enqueue(ctx, tx, outbox.Message{Topic: "orders", Key: key, Tag: "created", Payload: payload}); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		return tx.Commit()
	}
	const block = 100
	for done := 0; done < n; done += block {
		for _, msg := range []bool{false, true} {
			start := time.Now()
			for range block {
				if err := one(msg); err != nil {
					return 0, 0, err
				}
			}
			if msg {
				tWith += time.Since(start)
			} else {
				tWithout += time.Since(start)
			}
		}
	}
	total := float64((n + block - 1) / block * block)
	return total / tWith.Seconds(), total / tWithout.Seconds(), nil
}
