package console

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/store"
	"github.com/txbox/txbox/outbox"
)

// Box names a dead-letter table: the outbox's (rows the relay gave up on) or the inbox's (parked messages).
type Box string

// The dead-letter tables.
const (
	OutboxBox Box = "outbox"
	InboxBox  Box = "inbox"
)

// DeadFilter selects dead letters of one table of one database. Every other set field narrows the selection.
type DeadFilter struct {
	Box      Box    `json:"box"` // required
	Database string `json:"db"`  // required
	Consumer string `json:"consumer,omitempty"`
	Topic    string `json:"topic,omitempty"`
	// Key selects a business key and, unless Exact, the keys under it (Key + "/...").
	Key   string `json:"key,omitempty"`
	Exact bool   `json:"exact,omitempty"`
	// AfterID pages: dead letters with a higher id than the last one of the previous page.
	AfterID int64 `json:"after,omitempty"`
	// Limit is the page size: default Config.PageSize, at most MaxPageSize.
	Limit int `json:"limit,omitempty"`
}

// DeadLetter is a dead letter of either table.
type DeadLetter struct {
	Box         Box    `json:"box"`
	Database    string `json:"db"`
	ID          int64  `json:"id"`
	Consumer    string `json:"consumer,omitempty"`
	Topic       string `json:"topic"`
	Key         string `json:"key"`
	Tag         string `json:"tag,omitempty"`
	ShardingKey string `json:"sharding_key,omitempty"`
	MessageID   string `json:"message_id,omitempty"`
	Attempts    int    `json:"attempts"`
	LastError   string `json:"last_error"`
	// CreatedAt is when an outbox row was enqueued (zero for inbox dead letters).
	CreatedAt    time.Time `json:"created_at,omitzero"`
	DeadAt       time.Time `json:"dead_at"`
	PayloadBytes int       `json:"payload_bytes"`
	// Payload is sent only with Config.ShowPayloads, to requests with the token or a session.
	Payload []byte            `json:"payload,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// DeadPage is one page of dead letters.
type DeadPage struct {
	Filter DeadFilter   `json:"filter"`
	Items  []DeadLetter `json:"items"`
	// Next is the AfterID of the next page, 0 when this is the last.
	Next int64 `json:"next,omitempty"`
}

func (c *Console) checkFilter(f *DeadFilter) (*database, error) {
	d, err := c.database(f.Database)
	if err != nil {
		return nil, err
	}
	switch {
	case f.Box != OutboxBox && f.Box != InboxBox:
		return nil, fmt.Errorf("%w: box must be %q or %q, got %q", ErrInvalidRequest, OutboxBox, InboxBox, Printable(string(f.Box)))
	case f.Box == OutboxBox && f.Consumer != "":
		return nil, fmt.Errorf("%w: outbox dead letters have no consumer", ErrInvalidRequest)
	case f.Limit == 0:
		f.Limit = c.cfg.PageSize
	case f.Limit < 0 || f.Limit > MaxPageSize:
		return nil, fmt.Errorf("%w: limit must be between 1 and %d, got %d", ErrInvalidRequest, MaxPageSize, f.Limit)
	}
	return d, nil
}

// DeadLetters lists one page of the dead letters f selects, in id order. Payloads are included only with
// Config.ShowPayloads.
func (c *Console) DeadLetters(ctx context.Context, f DeadFilter) (*DeadPage, error) {
	d, err := c.checkFilter(&f)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	defer cancel()
	items, err := d.deadLetters(ctx, f, nil)
	if err != nil {
		return nil, err
	}
	page := &DeadPage{Filter: f, Items: items}
	if len(items) == f.Limit {
		page.Next = items[len(items)-1].ID
	}
	if !c.cfg.ShowPayloads {
		for i := range page.Items {
			page.Items[i].Payload = nil
		}
	}
	return page, nil
}

// deadLetters reads the dead letters f (and ids, when not empty) select: one page of f.Limit.
func (d *database) deadLetters(ctx context.Context, f DeadFilter, ids []int64) ([]DeadLetter, error) {
	p := &store.DeadSearchParams{Consumer: f.Consumer, Topic: f.Topic, Match: store.KeyMatch{Key: f.Key, Children: !f.Exact},
		IDs: ids, AfterID: f.AfterID, Limit: f.Limit}
	items := []DeadLetter{}
	if f.Box == OutboxBox {
		rows, err := d.s.OutboxDeadSearch(ctx, d.DB, p)
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", d.Name, err)
		}
		for _, r := range rows {
			h, _ := outbox.DecodeHeaders(r.Headers) // shown as far as they decode
			items = append(items, DeadLetter{Box: OutboxBox, Database: d.Name, ID: r.ID, Topic: r.Topic, Key: r.Key,
				Tag: r.Tag, ShardingKey: r.ShardingKey, Attempts: r.Attempts, LastError: r.LastError, CreatedAt: r.CreatedAt,
				DeadAt: r.DeadAt, PayloadBytes: len(r.Payload), Payload: r.Payload, Headers: h})
		}
		return items, nil
	}
	rows, err := d.s.InboxDeadSearch(ctx, d.DB, p)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", d.Name, err)
	}
	for _, r := range rows {
		h, _ := outbox.DecodeHeaders(r.Headers)
		items = append(items, DeadLetter{Box: InboxBox, Database: d.Name, ID: r.ID, Consumer: r.Consumer, Topic: r.Topic,
			Key: r.Key, MessageID: r.MessageID, Attempts: r.Attempts, LastError: r.LastError, DeadAt: r.ParkedAt,
			PayloadBytes: len(r.Payload), Payload: r.Payload, Headers: h})
	}
	return items, nil
}

// Action is what to do with dead letters.
type Action string

// The dead-letter actions.
const (
	// ActionRequeue moves outbox dead letters back into the outbox as new rows (new ids, attempts reset, due at
	// once), for the relay to publish (outbox.Outbox.Requeue).
	ActionRequeue Action = "requeue"
	// ActionReplay sends inbox dead letters again, as `txbox dead requeue --inbox` does: in one transaction per
	// message it releases the parked key (inbox.Inbox.Release) and enqueues the stored topic, key, payload
	// and headers into the same database's outbox, so that a relay on that database publishes it and the next
	// delivery runs the handler. Every group subscribed to the topic receives it again; groups that recorded
	// the key absorb it as a duplicate.
	ActionReplay Action = "replay"
	// ActionDrop deletes dead letters for good. An inbox dead letter's key stays recorded as processed, so
	// later deliveries are acknowledged as duplicates (inbox.Inbox.DropDead).
	ActionDrop Action = "drop"
)

// Selection names the dead letters an action changes: those DeadFilter selects (Box and Database are
// required), restricted to IDs, or every one of them with All.
type Selection struct {
	DeadFilter
	// IDs are the dead letters to change. Every id must exist and match the filter, or nothing changes
	// (ErrNotFound names the others).
	IDs []int64 `json:"ids,omitempty"`
	// All selects every dead letter the filter matches (at most MaxBulk); required when IDs is empty.
	All bool `json:"all,omitempty"`
	// DryRun reports what would change and changes nothing.
	DryRun bool `json:"dry_run,omitempty"`
}

// Result is what an action did.
type Result struct {
	Action   Action `json:"action"`
	Box      Box    `json:"box"`
	Database string `json:"db"`
	DryRun   bool   `json:"dry_run,omitempty"`
	// Selected are the dead letters the action was applied to (without payloads).
	Selected []DeadLetter `json:"selected"`
	// Changed counts those it changed. Dead letters that vanished meanwhile (another operator, a concurrent
	// requeue) are not counted and not failures.
	Changed int `json:"changed"`
	// Failed are the dead letters it could not change, with the reason; the others are changed.
	Failed []Failure `json:"failed,omitempty"`
	// More is true when All matched more than MaxBulk dead letters: run it again for the rest.
	More bool `json:"more,omitempty"`
}

// Failure is a dead letter an action could not change.
type Failure struct {
	ID    int64  `json:"id"`
	Error string `json:"error"`
}

// Apply runs action on the dead letters sel names: requeue for the outbox's, replay for the inbox's, drop for
// either. It refuses with ErrReadOnly in a read-only console, with ErrInvalidRequest for an action the table
// does not have or a selection without IDs or All, and with ErrNotFound, before changing anything, when an id
// names no dead letter the filter matches. Outbox dead letters are requeued or dropped in one transaction;
// inbox dead letters one transaction each, so that one that cannot be sent again does not hold the others
// back (Result.Failed).
func (c *Console) Apply(ctx context.Context, action Action, sel Selection) (*Result, error) {
	if c.cfg.ReadOnly && !sel.DryRun {
		return nil, fmt.Errorf("%w: %s refused", ErrReadOnly, Printable(string(action)))
	}
	switch {
	case action == ActionRequeue && sel.Box == InboxBox:
		return nil, fmt.Errorf("%w: inbox dead letters are replayed (replay), not requeued", ErrInvalidRequest)
	case action == ActionReplay && sel.Box == OutboxBox:
		return nil, fmt.Errorf("%w: outbox dead letters are requeued (requeue), not replayed", ErrInvalidRequest)
	case action != ActionRequeue && action != ActionReplay && action != ActionDrop:
		return nil, fmt.Errorf("%w: unknown action %q (want requeue, replay or drop)", ErrInvalidRequest, Printable(string(action)))
	case len(sel.IDs) == 0 && !sel.All:
		return nil, fmt.Errorf("%w: name the dead letters with ids, or select every match with all", ErrInvalidRequest)
	case len(sel.IDs) > 0 && sel.All:
		return nil, fmt.Errorf("%w: ids and all exclude each other", ErrInvalidRequest)
	case len(sel.IDs) > MaxBulk:
		return nil, fmt.Errorf("%w: at most %d ids at once, got %d", ErrInvalidRequest, MaxBulk, len(sel.IDs))
	}
	sel.AfterID, sel.Limit = 0, MaxPageSize
	d, err := c.checkFilter(&sel.DeadFilter)
	if err != nil {
		return nil, err
	}
	// QueryTimeout bounds the selection and each change (the outbox's one statement, each inbox dead letter's
	// transaction), not the whole of a bulk operation.
	sctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	selected, more, err := d.selectDead(sctx, sel)
	cancel()
	if err != nil {
		return nil, err
	}
	res := &Result{Action: action, Box: sel.Box, Database: d.Name, DryRun: sel.DryRun, Selected: selected, More: more}
	for i := range res.Selected {
		res.Selected[i].Payload = nil
	}
	if sel.DryRun || len(selected) == 0 {
		return res, nil
	}
	ids := make([]int64, len(selected))
	for i, s := range selected {
		ids[i] = s.ID
	}
	switch {
	case sel.Box == OutboxBox:
		cctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
		if action == ActionRequeue {
			res.Changed, err = d.ob.Requeue(cctx, d.DB, ids...)
		} else {
			res.Changed, err = d.ob.Drop(cctx, d.DB, ids...)
		}
		cancel()
	default:
		err = d.applyInbox(ctx, action, selected, res, c.cfg.QueryTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("database %s: %s %s dead letters: %w", d.Name, action, sel.Box, err)
	}
	c.cfg.Logger.InfoContext(ctx, "console: "+string(action)+" "+string(sel.Box)+" dead letters", "db", d.Name,
		"selected", len(selected), "changed", res.Changed, "failed", len(res.Failed), "ids", joinIDs(ids))
	return res, nil
}

// selectDead reads the dead letters sel names, checking that every id exists.
func (d *database) selectDead(ctx context.Context, sel Selection) ([]DeadLetter, bool, error) {
	var out []DeadLetter
	if len(sel.IDs) > 0 {
		ids := slices.Clone(sel.IDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		for chunk := range slices.Chunk(ids, MaxPageSize) {
			page, err := d.deadLetters(ctx, sel.DeadFilter, chunk)
			if err != nil {
				return nil, false, err
			}
			out = append(out, page...)
		}
		if len(out) < len(ids) {
			var missing []int64
			for _, id := range ids {
				if !slices.ContainsFunc(out, func(dl DeadLetter) bool { return dl.ID == id }) {
					missing = append(missing, id)
				}
			}
			return nil, false, fmt.Errorf("%w: no %s dead letter %s in %s matches: nothing changed", ErrNotFound, sel.Box,
				joinIDs(missing), d.Name)
		}
		return out, false, nil
	}
	f := sel.DeadFilter
	for {
		page, err := d.deadLetters(ctx, f, nil)
		if err != nil {
			return nil, false, err
		}
		out = append(out, page...)
		if len(out) >= MaxBulk {
			return out[:MaxBulk], len(out) > MaxBulk || len(page) == f.Limit, nil
		}
		if len(page) < f.Limit {
			return out, false, nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}

func (d *database) applyInbox(ctx context.Context, action Action, selected []DeadLetter, res *Result, timeout time.Duration) error {
	for _, dl := range selected {
		ib, err := d.inbox(dl.Consumer)
		if err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		if action == ActionDrop {
			err = ib.DropDead(cctx, dl.ID)
		} else {
			err = d.replay(cctx, ib, dl.ID)
		}
		cancel()
		switch {
		case errors.Is(err, inbox.ErrDeadNotFound):
			// replayed or dropped meanwhile: nothing to do
		case err != nil:
			res.Failed = append(res.Failed, Failure{ID: dl.ID, Error: err.Error()})
		default:
			res.Changed++
		}
	}
	return nil
}

// replay releases the parked message and enqueues it in the outbox in one transaction: either the relay will
// publish it and the next delivery runs the handler, or nothing changed.
func (d *database) replay(ctx context.Context, ib *inbox.Inbox, id int64) error {
	tx, err := d.DB.BeginTxx(ctx, nil)
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
	m := outbox.Message{Topic: dl.Delivery.Topic, Key: dl.Delivery.Key, Payload: dl.Delivery.Payload, Headers: dl.Delivery.Headers}
	if err := d.ob.Enqueue(ctx, tx, m); err != nil {
		return err
	}
	return tx.Commit()
}

func joinIDs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}
