// Package outbox is a throwaway stand-in for github.com/txbox/txbox/outbox (see package standin).
package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/txbox/txbox/dialect"
)

type Message struct {
	Topic       string
	Key         string
	Tag         string
	ShardingKey string
	Payload     []byte
	Headers     map[string]string
	DeliverAt   time.Time
}

type Record struct {
	ID int64
	Message
	Attempt   int
	CreatedAt time.Time
}

type Config struct{ Dialect dialect.Dialect }

type Outbox struct{ d dialect.Dialect }

func New(cfg Config) (*Outbox, error) {
	if cfg.Dialect == nil {
		return nil, errors.New("outbox: Dialect is required")
	}
	return &Outbox{d: cfg.Dialect}, nil
}

func (o *Outbox) Enqueue(ctx context.Context, tx dialect.DBTX, msgs ...Message) error {
	for _, m := range msgs {
		if m.Topic == "" || m.Key == "" {
			return errors.New("outbox: empty topic or key")
		}
		if _, err := tx.ExecContext(ctx, o.d.Rebind(`INSERT INTO standin_outbox (topic, msg_key, payload) VALUES (?, ?, ?)`),
			m.Topic, m.Key, m.Payload); err != nil {
			return err
		}
	}
	return nil
}
