package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/txbox/txbox/inbox"
)

// redeliveryHorizon is how long RocketMQ keeps redelivering a message a consumer failed: 16 retries over about
// 4h46m. A key purged sooner than that after it was processed can be processed again.
const redeliveryHorizon = 4*time.Hour + 46*time.Minute

func newInboxCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inbox",
		Short: "Maintain inbox tables",
		Long: `inbox groups maintenance of the inbox tables. Applications normally purge with inbox.RunPurger; purge
here is for a one-off cleanup or a cron job.`,
		Example: `  txbox inbox purge --older-than 7d`,
	}
	cmd.AddCommand(newPurgeCmd(g))
	return cmd
}

func newPurgeCmd(g *globals) *cobra.Command {
	var (
		olderThan days
		consumers []string
		batch     int
	)
	cmd := &cobra.Command{
		Use:   "purge --older-than DURATION",
		Short: "Delete inbox keys recorded longer ago than a duration",
		Long: `purge deletes the inbox keys (and stale failure counters) recorded more than --older-than ago, for every
consumer found in the inbox or only the --consumer ones, and prints how many it deleted per consumer. It works in
batches of --batch-size rows, each one statement in its own short transaction, so consumers keep running.
Keys of parked messages are kept until their dead letters are requeued or dropped.

An inbox key is what makes a redelivery a harmless duplicate: once it is purged, a later delivery of the same
message runs its handler again. Choose --older-than well beyond the broker's redelivery horizon — RocketMQ
retries a failed message 16 times over about 4h46m, and producer retries or replayed backlogs can come later
still. The library's own purger (inbox.RunPurger) keeps 7 days by default. At least 1h is required; less than
4h46m is allowed but warned about.

Durations take Go's units (h, m, s) plus d for days: 168h, 7d, 36h30m.`,
		Example: `  txbox inbox purge --older-than 7d
  txbox inbox purge --older-than 72h --consumer payments --consumer shipping`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch d := time.Duration(olderThan); {
			case d == 0:
				return usageError{errors.New("--older-than is required, e.g. --older-than 7d")}
			case d < 0:
				return usageError{fmt.Errorf("--older-than must be positive, got %s", d)}
			case d < inbox.MinRetention:
				return usageError{fmt.Errorf("--older-than must be at least %s (keys younger than that are redelivery guards), got %s",
					inbox.MinRetention, d)}
			}
			if batch < 1 || batch > inbox.MaxPurgeBatchSize {
				return usageError{fmt.Errorf("--batch-size must be between 1 and %d, got %d", inbox.MaxPurgeBatchSize, batch)}
			}
			log, err := g.logger()
			if err != nil {
				return err
			}
			if time.Duration(olderThan) < redeliveryHorizon {
				log.Warn("txbox inbox purge: --older-than is shorter than RocketMQ's redelivery horizon; a late redelivery of a purged key runs its handler again",
					"older_than", time.Duration(olderThan).String(), "horizon", redeliveryHorizon.String())
			}
			ctx := cmd.Context()
			db, d, err := g.openMigrated(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			if len(consumers) == 0 {
				st, err := readStats(ctx, db, d, g.prefix)
				if err != nil {
					return err
				}
				for _, c := range st.Inbox.Consumers {
					consumers = append(consumers, c.Consumer)
				}
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			defer w.Flush()
			fmt.Fprintln(w, "CONSUMER\tPURGED KEYS")
			total := 0
			for _, c := range consumers {
				ib, err := inbox.New(db, inbox.Config{Dialect: d, Prefix: g.prefix, Consumer: c, Retention: time.Duration(olderThan),
					PurgeBatchSize: batch, Logger: log})
				if err != nil {
					return usageError{fmt.Errorf("--consumer %q: %w", c, err)}
				}
				n, err := ib.Purge(ctx)
				total += n
				fmt.Fprintf(w, "%s\t%d\n", cell(c), n)
				if err != nil {
					_ = w.Flush()
					return fmt.Errorf("purge consumer %q after %d keys: %w", c, n, err)
				}
				log.Info("txbox inbox purge: purged", "consumer", c, "keys", n)
			}
			fmt.Fprintf(w, "total\t%d\n", total)
			return nil
		},
	}
	cmd.Flags().Var(&olderThan, "older-than", "delete keys recorded longer ago than this, e.g. 7d or 168h (required)")
	cmd.Flags().StringSliceVar(&consumers, "consumer", nil, "only this consumer (repeatable; default every consumer)")
	cmd.Flags().IntVar(&batch, "batch-size", inbox.DefaultPurgeBatchSize, "keys deleted per statement and transaction")
	return cmd
}

// days is a duration flag that also accepts a whole number of days ("7d"): retention windows are thought of in
// days, and time.ParseDuration has no unit for them.
type days time.Duration

func (d *days) String() string { return time.Duration(*d).String() }
func (d *days) Type() string   { return "duration" }

func (d *days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.Atoi(n)
		if err != nil {
			return fmt.Errorf("%q: want a whole number of days such as 7d, or a duration such as 36h", s)
		}
		*d = days(time.Duration(v) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = days(v)
	return nil
}
