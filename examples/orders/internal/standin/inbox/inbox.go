// Package inbox is a throwaway stand-in for github.com/txbox/txbox/inbox (see package standin).
package inbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
)

type Delivery struct {
	Key       string
	Payload   []byte
	Headers   map[string]string
	Topic     string
	MessageID string
	Attempt   int
}

type Handler func(ctx context.Context, tx *sqlx.Tx) error

type Result int

const (
	Failed Result = iota
	Processed
	Duplicate
	Parked
)

func (r Result) String() string {
	switch r {
	case Processed:
		return "processed"
	case Duplicate:
		return "duplicate"
	}
	return "unknown"
}

type Config struct {
	Dialect        dialect.Dialect
	Consumer       string
	HandlerTimeout time.Duration
}

type Inbox struct {
	db  *sqlx.DB
	cfg Config
}

func New(db *sqlx.DB, cfg Config) (*Inbox, error) {
	if cfg.Dialect == nil || cfg.Consumer == "" {
		return nil, errors.New("inbox: Dialect and Consumer are required")
	}
	if cfg.HandlerTimeout == 0 {
		cfg.HandlerTimeout = time.Minute
	}
	return &Inbox{db: db, cfg: cfg}, nil
}

func Key(parts ...string) string {
	esc := make([]string, len(parts))
	for i, p := range parts {
		esc[i] = strings.NewReplacer("%", "%25", "/", "%2F").Replace(p)
	}
	return strings.Join(esc, "/")
}

func (in *Inbox) Process(ctx context.Context, d Delivery, h Handler) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, in.cfg.HandlerTimeout)
	defer cancel()
	tx, err := in.db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	q := `INSERT INTO standin_inbox (consumer, msg_key) VALUES (?, ?) ON CONFLICT DO NOTHING`
	if in.cfg.Dialect.Name() == "mysql" {
		q = `INSERT IGNORE INTO standin_inbox (consumer, msg_key) VALUES (?, ?)`
	}
	res, err := tx.ExecContext(ctx, in.cfg.Dialect.Rebind(q), in.cfg.Consumer, d.Key)
	if err != nil {
		return 0, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Duplicate, nil
	}
	if err := h(ctx, tx); err != nil {
		return 0, fmt.Errorf("inbox: handler: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return Processed, nil
}
