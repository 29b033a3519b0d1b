// Package relay is a throwaway stand-in for github.com/txbox/txbox/relay (see package standin).
package relay

import (
	"context"
	"errors"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/examples/orders/internal/standin/outbox"
)

type Publisher interface {
	Publish(ctx context.Context, r outbox.Record) error
}

type Config struct {
	Dialect   dialect.Dialect
	Publisher Publisher
}

type Relay struct {
	db  *sqlx.DB
	cfg Config
}

func New(db *sqlx.DB, cfg Config) (*Relay, error) {
	if cfg.Dialect == nil || cfg.Publisher == nil {
		return nil, errors.New("relay: Dialect and Publisher are required")
	}
	return &Relay{db: db, cfg: cfg}, nil
}

func (r *Relay) Run(ctx context.Context) error {
	for {
		n, err := r.Drain(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil || n == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func (r *Relay) Drain(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.batch(ctx)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

func (r *Relay) batch(ctx context.Context) (int, error) {
	tx, err := r.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id, topic, msg_key, payload FROM standin_outbox ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`)
	if err != nil {
		return 0, err
	}
	var recs []outbox.Record
	for rows.Next() {
		var rec outbox.Record
		if err := rows.Scan(&rec.ID, &rec.Topic, &rec.Key, &rec.Payload); err != nil {
			rows.Close()
			return 0, err
		}
		recs = append(recs, rec)
	}
	if err := rows.Close(); err != nil {
		return 0, err
	}
	for _, rec := range recs {
		if err := r.cfg.Publisher.Publish(ctx, rec); err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, r.cfg.Dialect.Rebind(`DELETE FROM standin_outbox WHERE id = ?`), rec.ID); err != nil {
			return 0, err
		}
	}
	return len(recs), tx.Commit()
}
