package outbox

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/txbox/txbox/dialect"
)

// DeadLetters lists up to limit dead letters with ID > afterID, in ID order (page with the last ID seen).
// limit <= 0 means 100.
func (o *Outbox) DeadLetters(ctx context.Context, db dialect.DBTX, afterID int64, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := o.s.OutboxDeadList(ctx, db, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: list dead letters in %s: %w", o.s.Tables().OutboxDead, err)
	}
	out := make([]DeadLetter, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		h, err := DecodeHeaders(r.Headers)
		if err != nil {
			return nil, fmt.Errorf("outbox: dead letter %d: %w", r.ID, err)
		}
		out = append(out, DeadLetter{
			Record: Record{ID: r.ID, Attempt: r.Attempts, CreatedAt: r.CreatedAt, Message: Message{
				Topic: r.Topic, Key: r.Key, Tag: r.Tag, ShardingKey: r.ShardingKey, Payload: r.Payload, Headers: h,
			}},
			LastError: r.LastError,
			DeadAt:    r.DeadAt,
		})
	}
	return out, nil
}

// beginner is a pool or connection that can start a transaction (*sql.DB, *sqlx.DB, *sql.Conn).
type beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// Requeue moves the dead letters ids back into the outbox as new rows (new IDs, attempt count reset, due at
// once) and returns how many it moved; ids that are not dead letters are ignored. A requeued row goes behind
// the rows of its sharding key that are already queued. Given a pool or connection it runs in a transaction
// of its own; given a transaction it joins it.
func (o *Outbox) Requeue(ctx context.Context, db dialect.DBTX, ids ...int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var n int64
	err := inTx(ctx, db, func(tx dialect.DBTX) error {
		var err error
		n, err = o.s.OutboxDeadRequeue(ctx, tx, ids)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: requeue %d dead letters: %w", len(ids), err)
	}
	return int(n), nil
}

// Drop deletes the dead letters ids for good and returns how many it deleted.
func (o *Outbox) Drop(ctx context.Context, db dialect.DBTX, ids ...int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := o.s.OutboxDeadDelete(ctx, db, ids)
	if err != nil {
		return 0, fmt.Errorf("outbox: drop %d dead letters: %w", len(ids), err)
	}
	return int(n), nil
}

func inTx(ctx context.Context, db dialect.DBTX, fn func(tx dialect.DBTX) error) error {
	b, ok := db.(beginner)
	if !ok {
		return fn(db) // already a transaction: join it
	}
	tx, err := b.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // database/sql rolls back even when ctx has ended
		return err
	}
	return tx.Commit()
}
