package main

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/spf13/cobra"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/internal/partition"
	"github.com/txbox/txbox/internal/store"
)

// partitionedTables are the tables `txbox partitions` knows, by the name its flags take.
var partitionedTables = []struct {
	flag  string
	table store.PartitionedTable
}{{"inbox", store.InboxKeysTable}, {"published", store.PublishedTable}}

func newPartitionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "partitions",
		Short: "Show and maintain the time-partitioned inbox keys and published rows; convert to them",
		Long: `partitions works on the tables whose retention is paid by dropping whole partitions: the inbox keys
(<prefix>_inbox_keys) and the published outbox rows (<prefix>_outbox_published). A partition holds the rows of
one period of the database's clock. Applications keep them with inbox.RunPurger and the relay's Retention;
maintain does the same from cron or by hand, and convert moves an existing installation to them without downtime.`,
		Example: `  txbox partitions status
  txbox partitions maintain
  txbox partitions convert inbox start --retention 7d`,
	}
	cmd.AddCommand(newPartitionsStatusCmd(g), newPartitionsMaintainCmd(g), newPartitionsConvertCmd(g))
	return cmd
}

// partitionFlags are the flags that set a table's period and retention.
type partitionFlags struct {
	retention, period days
	ahead             int
}

func (f *partitionFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().Var(&f.retention, "retention", "keep rows at least this long, e.g. 7d ("+what+")")
	cmd.Flags().Var(&f.period, "period", "the partition period of a table that has none yet (default: a seventh of the retention, at least 1h)")
	cmd.Flags().IntVar(&f.ahead, "ahead", partition.DefaultAhead, "periods after the current one that get their partition ahead of time")
}

// config is the partition manager's configuration for table, whose state is st: --retention, or the table's.
func (f *partitionFlags) config(g *globals, table store.PartitionedTable, st store.PartitionState) (partition.Config, error) {
	c := partition.Config{Table: table, Retention: time.Duration(f.retention), Period: time.Duration(f.period), Ahead: f.ahead}
	if c.Retention == 0 {
		c.Retention = st.Retention
	}
	if c.Retention == 0 {
		return c, usageError{fmt.Errorf("%s has no retention yet: pass --retention", table)}
	}
	if c.Period != 0 && (c.Period < time.Hour || c.Period%time.Hour != 0) {
		return c, usageError{fmt.Errorf("--period must be a whole number of hours, at least 1h, got %s", c.Period)}
	}
	log, err := g.logger()
	c.Logger = log
	return c, err
}

func newPartitionsStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each table's layout, period, retention and partitions, and rows in the catch-all",
		Long: `status shows, for the inbox keys and the published rows: the layout (unpartitioned, converting or
partitioned), the partition period and retention, the partitions from the oldest to the newest with the start
of their first period (database clock, UTC), and how many rows the catch-all partition holds. Rows in the
catch-all mean partitions were missing when they were written: run maintain, and check that something (the
application's purger, the relay with Retention, or cron) does so regularly. Exit 1 when the catch-all holds rows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, g, func(db *sqlx.DB, s store.Store) error { return partitionStatus(cmd, db, s) })
		},
	}
}

func partitionStatus(cmd *cobra.Command, db *sqlx.DB, s store.Store) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TABLE\tLAYOUT\tPERIOD\tRETENTION\tPARTITIONS\tFIRST\tLAST\tCATCH-ALL ROWS")
	var overflow []string
	for _, pt := range partitionedTables {
		st, err := s.PartitionState(cmd.Context(), db, pt.table)
		if err != nil {
			return err
		}
		row := []any{pt.flag, st.Mode, dur(st.Period), dur(st.Retention), "-", "-", "-", "-"}
		if st.Mode != store.Unpartitioned && st.Period > 0 {
			parts, err := s.PartitionList(cmd.Context(), db, pt.table, st.Period)
			if err != nil {
				return err
			}
			n, _, _, err := s.PartitionCatchAllRows(cmd.Context(), db, pt.table, st.Period)
			if err != nil {
				return err
			}
			first, last, count := partitionSpan(parts, st.Period)
			row[4], row[5], row[6], row[7] = count, first, last, n
			if n > 0 {
				overflow = append(overflow, pt.flag)
			}
		}
		if st.Mode == store.Converting {
			row[1] = fmt.Sprintf("converting since %s", st.ChangedAt.Format(time.RFC3339))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%v\t%v\t%v\n", row...)
	}
	_ = w.Flush()
	if len(overflow) > 0 {
		return fmt.Errorf("rows in the catch-all partition of %v: run `txbox partitions maintain`", overflow)
	}
	return nil
}

// partitionSpan describes the partitions other than the catch-all: the start of the first and of the last.
func partitionSpan(parts []store.Partition, period time.Duration) (first, last string, n int) {
	first, last = "-", "-"
	for _, p := range parts {
		if p.CatchAll {
			continue
		}
		if n == 0 {
			first = "(older)"
			if p.Lo > -1<<62 {
				first = store.BucketStart(p.Lo, period).Format("2006-01-02 15:04")
			}
		}
		last = store.BucketStart(p.Hi-1, period).Format("2006-01-02 15:04")
		n++
	}
	return first, last, n
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

func newPartitionsMaintainCmd(g *globals) *cobra.Command {
	var f partitionFlags
	var only string
	cmd := &cobra.Command{
		Use:   "maintain",
		Short: "Make the next periods' partitions and drop the expired ones, now",
		Long: `maintain does what inbox.RunPurger and a relay with Retention do for their table: it makes the
partitions of the current period and the --ahead next ones, moves rows out of the catch-all partition, and drops
whole the partitions whose rows are all older than the table's retention (the longest retention any process
declared, or --retention if longer), after copying parked inbox keys into the current partition. Each
partition's DDL waits at most 2s for the table's locks; a step that could not get them fails and is left for the
next run. Unpartitioned tables are skipped.`,
		Example: `  txbox partitions maintain
  txbox partitions maintain --table published --retention 3d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if only != "" && only != "inbox" && only != "published" {
				return usageError{fmt.Errorf("--table must be inbox or published, got %q", only)}
			}
			return withStore(cmd, g, func(db *sqlx.DB, s store.Store) error { return maintainAll(cmd, g, db, s, only, &f) })
		},
	}
	f.add(cmd, "default: the table's")
	cmd.Flags().StringVar(&only, "table", "", "only inbox or published (default both)")
	return cmd
}

func maintainAll(cmd *cobra.Command, g *globals, db *sqlx.DB, s store.Store, only string, f *partitionFlags) error {
	var errs []error
	for _, pt := range partitionedTables {
		if only != "" && only != pt.flag {
			continue
		}
		st, err := s.PartitionState(cmd.Context(), db, pt.table)
		if err != nil {
			return err
		}
		if st.Mode == store.Unpartitioned {
			fmt.Fprintf(cmd.OutOrStdout(), "%s: unpartitioned, skipped\n", pt.flag)
			continue
		}
		cfg, err := f.config(g, pt.table, st)
		if err != nil {
			return err
		}
		m, err := partition.New(db.DB, s, cfg)
		if err != nil {
			return usageError{err}
		}
		r, err := m.Maintain(cmd.Context())
		fmt.Fprintf(cmd.OutOrStdout(), "%s: %d partitions created, %d dropped, %d parked keys carried forward, %d rows in the catch-all\n",
			pt.flag, len(r.Created), len(r.Dropped), r.Carried, r.CatchAll)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pt.flag, g.scrub.error(err)))
		}
	}
	return errors.Join(errs...)
}

func newPartitionsConvertCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Convert an existing installation's inbox keys or published rows to partitions, without downtime",
		Long: `convert moves an installation created before partitioned retention (or without it) to it, while its
consumers and relays keep running.

The inbox converts in two steps, so that keys recorded before the switch stay duplicates until they expire:
  start   claims record every key in both tables (<prefix>_inbox and the partitioned <prefix>_inbox_keys);
          processes of this txbox follow within 30s, older ones go on with <prefix>_inbox alone, and every key is
          still decided on <prefix>_inbox's primary key.
  finish  after every process runs this txbox: keys go to the partitioned table only and are looked up in
          <prefix>_inbox too until the ones recorded there expire (the purger deletes them in batches). finish
          refuses within --settle of start, and while keys were recorded in <prefix>_inbox alone within the last
          --settle (a process that does not know partitions).
  abort   back from start to the unpartitioned layout (not after finish).

The published table converts in one step: a partitioned table takes its name at once (relays write on), its rows
of the last --retention are copied over in batches, and the old table is dropped.`,
		Example: `  txbox partitions convert inbox start --retention 7d
  txbox partitions convert inbox finish
  txbox partitions convert published --retention 3d`,
	}
	inboxCmd := &cobra.Command{Use: "inbox", Short: "Convert the inbox keys: start, finish or abort"}
	var f partitionFlags
	start := &cobra.Command{
		Use:   "start",
		Short: "Record keys in both tables from now on",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, g, func(db *sqlx.DB, s store.Store) error {
				st, err := s.PartitionState(cmd.Context(), db, store.InboxKeysTable)
				if err != nil {
					return err
				}
				cfg, err := f.config(g, store.InboxKeysTable, st)
				if err != nil {
					return err
				}
				if st, err = partition.ConvertInboxStart(cmd.Context(), db.DB, s, cfg); err != nil {
					return g.scrub.error(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "inbox: converting since %s (period %s, retention %s); upgrade every consumer, "+
					"then run `txbox partitions convert inbox finish` after %s\n", st.ChangedAt.Format(time.RFC3339),
					dur(st.Period), dur(st.Retention), st.ChangedAt.Add(partition.DefaultSettle).Format(time.RFC3339))
				return nil
			})
		},
	}
	f.add(start, "required unless a process declared one")
	var settle time.Duration
	finish := &cobra.Command{
		Use:   "finish",
		Short: "Record keys in the partitioned table only",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if settle < partition.LayoutRefresh {
				return usageError{fmt.Errorf("--settle must be at least %s (processes read the layout that often)", partition.LayoutRefresh)}
			}
			return withStore(cmd, g, func(db *sqlx.DB, s store.Store) error {
				if err := partition.ConvertInboxFinish(cmd.Context(), db.DB, s, settle); err != nil {
					return g.scrub.error(err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), "inbox: partitioned")
				return nil
			})
		},
	}
	finish.Flags().DurationVar(&settle, "settle", partition.DefaultSettle,
		"how long after start every process records keys in both tables: 30s plus the longest ClaimWindow (HandlerTimeout + 1m by default)")
	abort := &cobra.Command{
		Use:   "abort",
		Short: "Go back to the unpartitioned layout (only before finish)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withStore(cmd, g, func(db *sqlx.DB, s store.Store) error {
				if err := partition.ConvertInboxAbort(cmd.Context(), db.DB, s); err != nil {
					return g.scrub.error(err)
				}
				fmt.Fprintln(cmd.OutOrStdout(), "inbox: unpartitioned")
				return nil
			})
		},
	}
	inboxCmd.AddCommand(start, finish, abort)

	var pf partitionFlags
	var batch int
	published := &cobra.Command{
		Use:   "published",
		Short: "Swap in a partitioned published table and copy the rows of the last --retention over",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if batch < 1 || batch > 100000 {
				return usageError{fmt.Errorf("--batch-size must be between 1 and 100000, got %d", batch)}
			}
			return withStore(cmd, g, func(db *sqlx.DB, s store.Store) error {
				st, err := s.PartitionState(cmd.Context(), db, store.PublishedTable)
				if err != nil {
					return err
				}
				cfg, err := pf.config(g, store.PublishedTable, st)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				err = partition.ConvertPublished(cmd.Context(), db.DB, s, cfg, batch, func(n int) { progress(out, n) })
				if err != nil {
					return g.scrub.error(err)
				}
				fmt.Fprintln(out, "published: partitioned")
				return nil
			})
		},
	}
	pf.add(published, "required: the relays' Retention")
	published.Flags().IntVar(&batch, "batch-size", 1000, "rows copied per statement")
	cmd.AddCommand(inboxCmd, published)
	return cmd
}

// progress prints a copy's progress every 100,000 rows.
func progress(w io.Writer, n int) {
	if n%100000 < 1000 {
		fmt.Fprintf(w, "published: %d rows copied\n", n)
	}
}

// withStore opens the migrated database and runs fn with the installation's store.
func withStore(cmd *cobra.Command, g *globals, fn func(db *sqlx.DB, s store.Store) error) error {
	db, d, err := g.openMigrated(cmd.Context())
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := storeFor(d, g.prefix)
	if err != nil {
		return err
	}
	return fn(db, s)
}

func storeFor(d dialect.Dialect, prefix string) (store.Store, error) {
	t, err := dialect.TablesFor(prefix)
	if err != nil {
		return nil, usageError{fmt.Errorf("--prefix: %w", err)}
	}
	return store.New(d, t)
}
