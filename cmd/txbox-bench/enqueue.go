package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/outbox"
)

// benchEnqueue runs n short business transactions with and without one outbox message each, interleaved in
// blocks so that both see the same machine load, and returns both rates in tx/s. The business transaction is
// one INSERT (statements == 1: the harshest case, where the outbox adds a whole statement to three) or an
// order placement: lock the customer row, insert the order, update the customer (statements == 3).
// Two yardsticks run in the same blocks: plus1, the business transaction plus one trivial statement (SELECT 1)
// instead of the message, the cost of any extra round trip in the caller's transaction; and hand, plus a
// hand-written INSERT of the same row into txbox_outbox (no validation, no NOTIFY), what an outbox costs
// without txbox. clients transactions run at once (-enqueue-clients; default 1, the latency-bound case).
func benchEnqueue(db *sqlx.DB, d dialect.Dialect, n, statements int) (with, without, plus1, hand float64, err error) {
	ctx := context.Background()
	for _, ddl := range []string{
		"CREATE TABLE bench_orders (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL, amount BIGINT NOT NULL)",
		"CREATE TABLE bench_customers (id VARCHAR(64) PRIMARY KEY, orders BIGINT NOT NULL, spent BIGINT NOT NULL)",
	} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	const customers = 1000
	for c := range customers {
		if _, err := db.ExecContext(ctx, d.Rebind("INSERT INTO bench_customers (id, orders, spent) VALUES (?, 0, 0)"), fmt.Sprintf("c-%d", c)); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	lockCustomer := d.Rebind("SELECT orders FROM bench_customers WHERE id = ? FOR UPDATE")
	updCustomer := d.Rebind("UPDATE bench_customers SET orders = orders + 1, spent = spent + ? WHERE id = ?")
	ob, err := outbox.New(outbox.Config{Dialect: d, DisableNotify: !*notify})
	if err != nil {
		return 0, 0, 0, 0, err
	}
	insert := d.Rebind("INSERT INTO bench_orders (id, customer, amount) VALUES (?, ?, ?)")
	payload := []byte(`{"order":12345,"customer":"c-42","amount":1999,"currency":"EUR"}`)
	var tWith, tWithout, tPlus1, tHand time.Duration
	var lastID atomic.Int64
	const (
		bare = iota
		withMsg
		withSelect1
		withHand
	)
	handInsert := d.Rebind("INSERT INTO txbox_outbox (part, topic, msg_key, tag, sharding_key, payload, attempts," +
		" available_at, created_at) VALUES (-1, ?, ?, ?, '', ?, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
	one := func(mode int) error {
		id := lastID.Add(1)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		customer := fmt.Sprintf("c-%d", id%customers)
		if statements >= 3 {
			var orders int64
			if err := tx.QueryRowContext(ctx, lockCustomer, customer).Scan(&orders); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, insert, id, customer, 1999); err != nil {
			_ = tx.Rollback()
			return err
		}
		if statements >= 3 {
			if _, err := tx.ExecContext(ctx, updCustomer, 1999, customer); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if mode == withSelect1 {
			var one int
			if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if mode == withHand {
			if _, err := tx.ExecContext(ctx, handInsert, "orders", fmt.Sprintf("%d/order-created", id), "created", payload); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if mode == withMsg {
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
		for _, mode := range []int{bare, withMsg, withSelect1, withHand} {
			start := time.Now()
			var left atomic.Int64
			left.Store(block)
			errs := make([]error, *clients)
			var wg sync.WaitGroup
			for c := range *clients {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						if err := one(mode); err != nil {
							errs[c] = err
							return
						}
					}
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return 0, 0, 0, 0, err
			}
			switch mode {
			case withMsg:
				tWith += time.Since(start)
			case withSelect1:
				tPlus1 += time.Since(start)
			case withHand:
				tHand += time.Since(start)
			default:
				tWithout += time.Since(start)
			}
		}
	}
	total := float64((n + block - 1) / block * block)
	return total / tWith.Seconds(), total / tWithout.Seconds(), total / tPlus1.Seconds(), total / tHand.Seconds(), nil
}
