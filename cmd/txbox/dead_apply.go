package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay/rocketmq"
)

// apply requeues or drops rows and returns how many it changed. Inbox dead letters are handled one transaction
// each, so one that cannot be sent again (e.g. stored without a topic) does not hold the others back.
func (f *deadFlags) apply(ctx context.Context, db *sqlx.DB, d dialect.Dialect, prefix, verb string, rows []deadRow, log *slog.Logger) (int, error) {
	// A requeued inbox message goes through the relay to RocketMQ: refuse what the broker (with default
	// limits) could never take, rather than turning it into an outbox dead letter.
	ob, err := outbox.New(outbox.Config{Dialect: d, Prefix: prefix, Check: rocketmq.Check})
	if err != nil {
		return 0, err
	}
	if f.outbox {
		ids := make([]int64, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		var n int
		if verb == "requeue" {
			n, err = ob.Requeue(ctx, db, ids...)
		} else {
			n, err = ob.Drop(ctx, db, ids...)
		}
		if err == nil {
			log.Info("txbox dead: "+pastTense(verb)+" outbox dead letters", "count", n)
		}
		return n, err
	}
	inboxes := map[string]*inbox.Inbox{}
	var errs []error
	n := 0
	for _, r := range rows {
		ib := inboxes[r.Consumer]
		if ib == nil {
			if ib, err = inbox.New(db, inbox.Config{Dialect: d, Prefix: prefix, Consumer: r.Consumer, Logger: log}); err != nil {
				return n, err
			}
			inboxes[r.Consumer] = ib
		}
		if verb == "requeue" {
			err = requeueInbox(ctx, db, ib, ob, r.ID)
		} else {
			err = ib.DropDead(ctx, r.ID)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s inbox dead letter %d (consumer %q, key %q): %w", verb, r.ID, r.Consumer, r.Key, err))
			continue
		}
		log.Info("txbox dead: "+pastTense(verb)+" inbox dead letter", "dead_id", r.ID, "consumer", r.Consumer,
			"topic", r.Topic, "key", r.Key)
		n++
	}
	return n, errors.Join(errs...)
}

// requeueInbox releases the parked message and enqueues it in the outbox in one transaction: either the relay
// will publish it and the next delivery runs the handler, or nothing changed.
func requeueInbox(ctx context.Context, db *sqlx.DB, ib *inbox.Inbox, ob *outbox.Outbox, id int64) error {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	dl, err := ib.Release(ctx, tx, id)
	if err != nil {
		return err
	}
	if dl.Delivery.Topic == "" {
		return errors.New("stored without a topic: nothing to publish it to (drop it, or replay it in code)")
	}
	err = ob.Enqueue(ctx, tx, outbox.Message{
		Topic: dl.Delivery.Topic, Key: dl.Delivery.Key, Payload: dl.Delivery.Payload, Headers: dl.Delivery.Headers,
	})
	if err != nil {
		return err
	}
	return tx.Commit()
}

// readStats reads the status numbers of the installation's tables.
func readStats(ctx context.Context, db *sqlx.DB, d dialect.Dialect, prefix string) (*store.Stats, error) {
	t, err := dialect.TablesFor(prefix)
	if err != nil {
		return nil, err
	}
	s, err := store.New(d, t)
	if err != nil {
		return nil, err
	}
	st, err := s.Stats(ctx, db)
	if errors.Is(err, dialect.ErrSchemaMissing) {
		return nil, fmt.Errorf("read status: txbox tables missing, run `txbox migrate up` first: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	return st, nil
}
