package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newStatusCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show outbox backlog and lag, dead letters and inbox size",
		Long: `status reads txbox's tables and prints the outbox backlog (rows not yet published, and how many are
due), the age of the oldest unpublished row, dead letters, and the inbox size — in total, per topic and per
consumer. With --json it prints one JSON object (ages in nanoseconds) for scripts and monitors.`,
		Example: `  txbox status
  txbox status --json | jq .outbox.pending`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			fmt.Fprintf(w, "outbox\tpending %d\tdue %d\toldest %s\tdead %d\n", st.Outbox.Pending, st.Outbox.Due,
				st.Outbox.OldestPendingAge.Round(time.Millisecond), st.Outbox.Dead)
			for _, t := range st.Outbox.Topics {
				fmt.Fprintf(w, "  topic %s\tpending %d\tdead %d\n", cell(t.Topic), t.Pending, t.Dead)
			}
			fmt.Fprintf(w, "inbox\tkeys %d\tdead %d\n", st.Inbox.Keys, st.Inbox.Dead)
			for _, c := range st.Inbox.Consumers {
				fmt.Fprintf(w, "  consumer %s\tkeys %d\tdead %d\n", cell(c.Consumer), c.Keys, c.Dead)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
