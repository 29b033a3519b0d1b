package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/txbox/txbox/internal/store"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	var databases string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show outbox backlog and lag, dead letters and inbox size",
		Long: `status reads txbox's tables and prints the outbox backlog (rows not yet published, and how many are
due), the age of the oldest unpublished row, dead letters, and the inbox size — in total, per topic and per
consumer. With --json it prints one JSON object (ages in nanoseconds) for scripts and monitors.

With --databases FILE it does so for every database of the file, and says for each which relay of the fleet
holds it (txbox relay --databases) and which relays were seen there; a database that cannot be reached is
shown down with the error, and status then exits 1 after printing the others.`,
		Example: `  txbox status
  txbox status --json | jq .outbox.pending
  txbox status --databases databases.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if databases != "" {
				return statusOfDatabases(cmd, g, databases, asJSON)
			}
			db, d, err := g.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := readStats(cmd.Context(), db, d, g.prefix)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(jsonWriter{out})
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			writeStats(w, st, "")
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&databases, "databases", envOr("TXBOX_DATABASES", ""),
		"YAML file naming the databases, with ${ENV} in DSNs (env TXBOX_DATABASES); instead of --dialect/--dsn")
	return cmd
}

// writeStats prints st as status does, each line after indent.
func writeStats(w io.Writer, st *store.Stats, indent string) {
	fmt.Fprintf(w, "%soutbox\tpending %d\tdue %d\toldest %s\tdead %d\n", indent, st.Outbox.Pending, st.Outbox.Due,
		st.Outbox.OldestPendingAge.Round(time.Millisecond), st.Outbox.Dead)
	for _, t := range st.Outbox.Topics {
		fmt.Fprintf(w, "%s  topic %s\tpending %d\tdead %d\n", indent, cell(t.Topic), t.Pending, t.Dead)
	}
	fmt.Fprintf(w, "%sinbox\tkeys %d\tdead %d\n", indent, st.Inbox.Keys, st.Inbox.Dead)
	for _, c := range st.Inbox.Consumers {
		fmt.Fprintf(w, "%s  consumer %s\tkeys %d\tdead %d\n", indent, cell(c.Consumer), c.Keys, c.Dead)
	}
}
