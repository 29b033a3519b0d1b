package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/txbox/txbox/migrations"
)

func newMigrateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade txbox's tables, or list their migrations",
		Long: `migrate runs txbox's embedded goose migrations. Versions are recorded in <prefix>_migrations, never in an
application's own goose table. Concurrent runs (several replicas starting) wait for each other.`,
		Example: `  txbox migrate up
  txbox migrate status`,
	}
	var partitioned bool
	up := &cobra.Command{
		Use:   "up",
		Short: "Apply every pending migration (idempotent)",
		Example: `  txbox migrate up --dialect postgres --dsn 'postgres://app:secret@127.0.0.1:5432/app?sslmode=disable'
  TXBOX_DIALECT=mysql TXBOX_DSN='app:secret@tcp(127.0.0.1:3306)/app' txbox migrate up`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, d, err := g.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			if err := migrations.Up(cmd.Context(), db.DB, d, migrations.WithPrefix(g.prefix),
				migrations.WithPartitioned(partitioned)); err != nil {
				return err
			}
			st, err := migrations.Status(cmd.Context(), db.DB, d, migrations.WithPrefix(g.prefix))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "txbox schema is at version %d\n", st[len(st)-1].Version)
			return nil
		},
	}
	up.Flags().BoolVar(&partitioned, "partitioned", false, "a new installation gets time-partitioned inbox keys and "+
		"published rows (ignored for an existing one: see `txbox partitions convert`)")
	status := &cobra.Command{
		Use:     "status",
		Short:   "List txbox's migrations and whether each is applied; exit 1 when some are pending",
		Example: `  txbox migrate status --dialect mysql --dsn 'app:secret@tcp(127.0.0.1:3306)/app'`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, d, err := g.open(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			st, err := migrations.Status(cmd.Context(), db.DB, d, migrations.WithPrefix(g.prefix))
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VERSION\tNAME\tSTATE")
			pending := 0
			for _, s := range st {
				state := "applied"
				if !s.Applied {
					state = "pending"
					pending++
				}
				fmt.Fprintf(w, "%d\t%s\t%s\n", s.Version, cell(s.Name), state)
			}
			_ = w.Flush()
			if pending > 0 {
				return fmt.Errorf("%d migration(s) pending: run `txbox migrate up`", pending)
			}
			return nil
		},
	}
	cmd.AddCommand(up, status)
	return cmd
}
