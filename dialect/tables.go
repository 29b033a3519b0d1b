package dialect

import (
	"fmt"
	"strings"
)

// DefaultPrefix is the table prefix of an installation that sets none: its tables are txbox_outbox,
// txbox_inbox and so on.
const DefaultPrefix = "txbox"

// MaxPrefixLen is the longest table part of a prefix: it leaves room for the longest table and index suffix
// txbox appends within PostgreSQL's 63-byte identifier limit.
const MaxPrefixLen = 32

// Tables are the names of one txbox installation's tables, all derived from one prefix (see [TablesFor]).
// Migrations, outbox, relay, inbox, metrics and the CLI take the prefix, never the names one by one, so they
// cannot disagree.
type Tables struct {
	// Prefix is the prefix the names derive from, e.g. "txbox" or "billing.txbox".
	Prefix string

	Outbox          string // <prefix>_outbox: messages waiting to be published
	OutboxDead      string // <prefix>_outbox_dead: messages that failed too often
	OutboxPublished string // <prefix>_outbox_published: published messages kept for a while (relay Retention)
	Inbox           string // <prefix>_inbox: processed business keys (the unpartitioned layout)
	InboxKeys       string // <prefix>_inbox_keys: processed business keys, partitioned by time (the partitioned layout)
	InboxAttempts   string // <prefix>_inbox_attempts: failed deliveries, counted
	InboxDead       string // <prefix>_inbox_dead: parked deliveries
	Effects         string // <prefix>_effects: idempotency records of effects outside the database
	Partitions      string // <prefix>_partitions: layout, period and retention of the time-partitioned tables
	Migrations      string // <prefix>_migrations: the applied migrations (goose's version table)
	Relays          string // <prefix>_relays: heartbeats of the relays of a fleet that hold or watch the database
}

// TablesFor returns the table names for prefix; "" means [DefaultPrefix].
//
// A prefix is a name of lowercase ASCII letters, digits and underscores that does not start with a digit, at
// most [MaxPrefixLen] bytes, optionally qualified by a schema ("billing.txbox": the tables live in schema, on
// MySQL database, billing, which must exist or be creatable by migrations). Two installations with different
// prefixes share a database without seeing each other's rows. Lowercase only: PostgreSQL folds unquoted names,
// and goose writes its version table's name unquoted.
func TablesFor(prefix string) (Tables, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := checkPrefix(prefix); err != nil {
		return Tables{}, err
	}
	return Tables{
		Prefix:          prefix,
		Outbox:          prefix + "_outbox",
		OutboxDead:      prefix + "_outbox_dead",
		OutboxPublished: prefix + "_outbox_published",
		Inbox:           prefix + "_inbox",
		InboxKeys:       prefix + "_inbox_keys",
		InboxAttempts:   prefix + "_inbox_attempts",
		InboxDead:       prefix + "_inbox_dead",
		Effects:         prefix + "_effects",
		Partitions:      prefix + "_partitions",
		Migrations:      prefix + "_migrations",
		Relays:          prefix + "_relays",
	}, nil
}

// Schema is the schema (MySQL: database) part of the prefix, or "" when the tables live in the connection's
// current schema.
func (t Tables) Schema() string {
	if s, _, ok := strings.Cut(t.Prefix, "."); ok {
		return s
	}
	return ""
}

// Base is the prefix without its schema: what index and constraint names start with.
func (t Tables) Base() string {
	if _, b, ok := strings.Cut(t.Prefix, "."); ok {
		return b
	}
	return t.Prefix
}

func checkPrefix(prefix string) error {
	parts := strings.Split(prefix, ".")
	if len(parts) > 2 {
		return fmt.Errorf("%w: prefix %q has more than two parts (want [schema.]name)", ErrInvalidIdent, prefix)
	}
	for i, p := range parts {
		limit := MaxIdentLen
		if i == len(parts)-1 {
			limit = MaxPrefixLen
		}
		if p == "" {
			return fmt.Errorf("%w: prefix %q has an empty part", ErrInvalidIdent, prefix)
		}
		if len(p) > limit {
			return fmt.Errorf("%w: prefix %q: %q is %d bytes, longer than %d", ErrInvalidIdent, prefix, p, len(p), limit)
		}
		for j := 0; j < len(p); j++ {
			switch c := p[j]; {
			case c == '_', c >= 'a' && c <= 'z':
			case c >= '0' && c <= '9' && j > 0:
			default:
				return fmt.Errorf("%w: prefix %q: character %q at %d (want lowercase ASCII letters, digits and _, "+
					"not starting with a digit)", ErrInvalidIdent, prefix, c, j)
			}
		}
	}
	return nil
}
