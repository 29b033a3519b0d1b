package console

import (
	"context"
	"fmt"
	"time"

	"github.com/txbox/txbox/internal/store"
)

// KeysFilter selects recorded inbox keys of one consumer.
type KeysFilter struct {
	Database string `json:"db"`       // required
	Consumer string `json:"consumer"` // required
	// Key selects a business key and, unless Exact, the keys under it; empty: every key.
	Key   string `json:"key,omitempty"`
	Exact bool   `json:"exact,omitempty"`
	// After pages: keys after this one in byte order, the last key of the previous page.
	After string `json:"after,omitempty"`
	// Limit is the page size: default Config.PageSize, at most MaxPageSize.
	Limit int `json:"limit,omitempty"`
}

// InboxKey is a recorded inbox key.
type InboxKey struct {
	Consumer string `json:"consumer"`
	Key      string `json:"key"`
	// ReceivedAt is when its effects committed (or when its dead letter was replayed or dropped).
	ReceivedAt time.Time `json:"received_at"`
	// Parked is true while the message sits in the inbox's dead-letter table.
	Parked bool `json:"parked,omitempty"`
}

// KeysPage is one page of inbox keys.
type KeysPage struct {
	Filter KeysFilter `json:"filter"`
	Items  []InboxKey `json:"items"`
	// Next is the After of the next page, "" when this is the last.
	Next string `json:"next,omitempty"`
}

// Consumers returns the inbox consumers of a database: every consumer with a recorded key, a failing
// delivery or a dead letter, sorted.
func (c *Console) Consumers(ctx context.Context, db string) ([]string, error) {
	d, err := c.database(db)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	defer cancel()
	out, err := d.s.InboxConsumers(ctx, d.DB)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", d.Name, err)
	}
	return out, nil
}

// Keys lists one page of a consumer's recorded inbox keys, in byte order of the key: a range of the inbox's
// primary key.
func (c *Console) Keys(ctx context.Context, f KeysFilter) (*KeysPage, error) {
	d, err := c.database(f.Database)
	if err != nil {
		return nil, err
	}
	switch {
	case f.Consumer == "":
		return nil, fmt.Errorf("%w: no consumer named", ErrInvalidRequest)
	case f.Limit == 0:
		f.Limit = c.cfg.PageSize
	case f.Limit < 0 || f.Limit > MaxPageSize:
		return nil, fmt.Errorf("%w: limit must be between 1 and %d, got %d", ErrInvalidRequest, MaxPageSize, f.Limit)
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.QueryTimeout)
	defer cancel()
	rows, err := d.s.InboxKeys(ctx, d.DB, &store.InboxKeysParams{Consumer: f.Consumer, AfterKey: f.After, Limit: f.Limit,
		Match: store.KeyMatch{Key: f.Key, Children: !f.Exact}})
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", d.Name, err)
	}
	page := &KeysPage{Filter: f, Items: make([]InboxKey, 0, len(rows))}
	for _, r := range rows {
		page.Items = append(page.Items, InboxKey{Consumer: r.Consumer, Key: r.Key, ReceivedAt: r.ReceivedAt, Parked: r.Parked})
	}
	if len(rows) == f.Limit {
		page.Next = rows[len(rows)-1].Key
	}
	return page, nil
}
