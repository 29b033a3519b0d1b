package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/store"
)

// seenWithin is how old a relay's heartbeat in a database may be for status to list it: far more than a fleet's
// RelayTTL, so that a relay that stopped recently still shows, with its age.
const seenWithin = time.Minute

// databaseStatus is one database of status --databases.
type databaseStatus struct {
	Name    string `json:"name"`
	Dialect string `json:"dialect"`
	Where   string `json:"where"` // the DSN without its secrets (dsnWhere)
	Prefix  string `json:"prefix"`
	// Error says why the database could not be read; the other fields are then empty.
	Error string `json:"error,omitempty"`
	// Holder is the relay whose freshest heartbeat says it holds the drain lease ("" when none within a minute).
	Holder string             `json:"holder,omitempty"`
	Relays []relaySeen        `json:"relays"`
	Outbox *store.OutboxStats `json:"outbox,omitempty"`
	Inbox  *store.InboxStats  `json:"inbox,omitempty"`
}

// relaySeen is a relay's heartbeat row in a database.
type relaySeen struct {
	ID      string        `json:"id"`
	Holds   bool          `json:"holds"`
	Held    int           `json:"held"`
	MaxHeld int           `json:"max_held"`
	Age     time.Duration `json:"age_ns"`
}

// statusOfDatabases is status --databases: every database of the file, read at once, in the file's order.
func statusOfDatabases(cmd *cobra.Command, g *globals, path string, asJSON bool) error {
	pf := cmd.Root().PersistentFlags()
	entries, err := g.databases(path, pf.Changed("dsn") || pf.Changed("dialect"))
	if err != nil {
		return err
	}
	out := make([]databaseStatus, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		wg.Go(func() { out[i] = readDatabase(cmd.Context(), g, e) })
	}
	wg.Wait()
	down := 0
	for _, d := range out {
		if d.Error != "" {
			down++
		}
	}
	if asJSON {
		enc := json.NewEncoder(jsonWriter{cmd.OutOrStdout()})
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Databases []databaseStatus `json:"databases"`
		}{out}); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		for _, d := range out {
			fmt.Fprintf(w, "database %s\t%s\t%s\tprefix %s\n", cell(d.Name), d.Dialect, cell(d.Where), d.Prefix)
			if d.Error != "" {
				fmt.Fprintf(w, "  down\t%s\n", escapeLines(d.Error))
				continue
			}
			fmt.Fprintf(w, "  fleet\t%s\n", fleetLine(d))
			writeStats(w, &store.Stats{Outbox: *d.Outbox, Inbox: *d.Inbox}, "  ")
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if down > 0 {
		return fmt.Errorf("%d of %d databases could not be read", down, len(out))
	}
	return nil
}

// fleetLine says who holds the database and which relays were seen there.
func fleetLine(d databaseStatus) string {
	var b strings.Builder
	if d.Holder == "" {
		b.WriteString("held by no relay")
	} else {
		for _, r := range d.Relays {
			if r.ID == d.Holder {
				fmt.Fprintf(&b, "held by %s (heartbeat %s ago)", cell(r.ID), r.Age.Round(time.Millisecond))
			}
		}
	}
	if len(d.Relays) > 0 {
		b.WriteString("; relays seen:")
		for _, r := range d.Relays {
			fmt.Fprintf(&b, " %s %s ago,", cell(r.ID), r.Age.Round(time.Millisecond))
		}
		return strings.TrimSuffix(b.String(), ",")
	}
	return b.String() + "; no relay seen"
}

// readDatabase reads e's backlog and the relays' heartbeats, within --connect-timeout.
func readDatabase(ctx context.Context, g *globals, e databaseEntry) databaseStatus {
	d := databaseStatus{Name: e.Name, Dialect: e.Dialect.Name(), Where: dsnWhere(e.Dialect, e.DSN), Prefix: e.Prefix,
		Relays: []relaySeen{}}
	fail := func(err error) databaseStatus {
		d.Error = g.scrub.text(err.Error())
		return d
	}
	db, err := openEntry(e)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		return fail(fmt.Errorf("cannot reach the database: %w", err))
	}
	st, err := readStats(ctx, db, e.Dialect, e.Prefix)
	if err != nil {
		return fail(err)
	}
	d.Outbox, d.Inbox = &st.Outbox, &st.Inbox
	t, _ := dialect.TablesFor(e.Prefix) // validated with the file
	s, err := store.New(e.Dialect, t)
	if err != nil {
		return fail(err)
	}
	rs, err := s.FleetRelays(ctx, db, seenWithin)
	if errors.Is(err, dialect.ErrSchemaMissing) {
		return fail(fmt.Errorf("read the relays: txbox tables missing, run `txbox migrate up` first: %w", err))
	}
	if err != nil {
		return fail(fmt.Errorf("read the relays: %w", err))
	}
	fresh := seenWithin
	for _, r := range rs {
		d.Relays = append(d.Relays, relaySeen{ID: r.ID, Holds: r.Holds, Held: r.Held, MaxHeld: r.MaxHeld, Age: r.Age})
		if r.Holds && r.Age < fresh {
			d.Holder, fresh = r.ID, r.Age
		}
	}
	return d
}
