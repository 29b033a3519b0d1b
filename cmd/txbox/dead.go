package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
	"github.com/spf13/cobra"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/outbox"
)

// deadFlags select dead letters for the dead subcommands.
type deadFlags struct {
	outbox, inbox bool
	consumers     []string
	ids           []int64
	key           string
	all           bool
	dryRun        bool
	limit         int
	json, payload bool
}

// deadRow is one dead letter of either table, as listed.
type deadRow struct {
	Box          string            `json:"box"` // "outbox" or "inbox"
	ID           int64             `json:"id"`
	Consumer     string            `json:"consumer,omitempty"`
	Topic        string            `json:"topic"`
	Key          string            `json:"key"`
	Tag          string            `json:"tag,omitempty"`
	ShardingKey  string            `json:"sharding_key,omitempty"`
	Attempts     int               `json:"attempts"`
	LastError    string            `json:"last_error"`
	DeadAt       time.Time         `json:"dead_at"`
	PayloadBytes int               `json:"payload_bytes"`
	Payload      []byte            `json:"payload,omitempty"` // base64 in JSON; only with --payload
	Headers      map[string]string `json:"headers,omitempty"`
	// Truncated describes an inbox dead letter cut to be stored (inbox.DeadLetter.Truncated).
	Truncated *truncated `json:"truncated,omitempty"`
}

// truncated is inbox.Truncation as listed.
type truncated struct {
	PayloadBytes  int    `json:"payload_bytes"`  // the delivered payload's size; payload_bytes above is what is kept
	PayloadSHA256 string `json:"payload_sha256"` // hex
	HeadersBytes  int    `json:"headers_bytes,omitempty"`
}

const deadLong = `Dead letters are messages txbox gave up on: outbox rows the relay could not publish after its
maximum attempts (<prefix>_outbox_dead), and inbox messages whose handler kept failing (<prefix>_inbox_dead, "parked":
further deliveries of their key are acknowledged without running the handler). Choose the table with --outbox
or --inbox; inbox dead letters belong to a consumer (--consumer, repeatable; default every consumer).`

func newDeadCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "List, requeue or drop outbox and inbox dead letters",
		Long:  deadLong,
		Example: `  txbox dead list --outbox
  txbox dead requeue --outbox --all --dry-run
  txbox dead drop --inbox --consumer payments --id 17`,
	}
	cmd.AddCommand(newDeadListCmd(g), newDeadRequeueCmd(g), newDeadDropCmd(g))
	return cmd
}

func newDeadListCmd(g *globals) *cobra.Command {
	f := &deadFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first",
		Long: deadLong + `

list prints a table (ID, consumer, topic, key, attempts, when, payload size, last error), or JSON with --json
(payloads included only with --payload, base64-encoded).`,
		Example: `  txbox dead list --outbox
  txbox dead list --inbox --consumer payments --key 12345/payment
  txbox dead list --inbox --json --payload | jq '.[].last_error'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(false); err != nil {
				return err
			}
			db, d, err := g.openMigrated(cmd.Context())
			if err != nil {
				return err
			}
			defer db.Close()
			rows, err := f.collect(cmd.Context(), db, d, g.prefix)
			if err != nil {
				return err
			}
			if f.limit > 0 && len(rows) > f.limit {
				rows = rows[:f.limit]
			}
			out := cmd.OutOrStdout()
			if f.json {
				if !f.payload {
					for i := range rows {
						rows[i].Payload = nil
					}
				}
				if rows == nil {
					rows = []deadRow{}
				}
				enc := json.NewEncoder(jsonWriter{out})
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return printDead(out, rows)
		},
	}
	f.register(cmd, false)
	cmd.Flags().IntVar(&f.limit, "limit", 0, "print at most this many (0: all)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print a JSON array")
	cmd.Flags().BoolVar(&f.payload, "payload", false, "include payloads in --json output")
	return cmd
}

func newDeadRequeueCmd(g *globals) *cobra.Command {
	f := &deadFlags{}
	cmd := &cobra.Command{
		Use:   "requeue",
		Short: "Send dead letters again: outbox rows back to the relay, inbox messages through the outbox",
		Long: deadLong + `

requeue sends the selected dead letters again:

  --outbox  each dead row goes back into the outbox as a new row (new id, attempts reset, due at once), behind
            the rows of its sharding key already queued, and the relay publishes it.
  --inbox   the broker acknowledged a parked message long ago and will not deliver it again, so requeue sends
            it again itself. In ONE transaction per message it enqueues the stored topic, key, payload and
            headers into the outbox table of the same database, deletes the dead letter, and deletes the key's
            parked record, so the next delivery runs the handler. A relay must run on this database to publish
            it (txbox relay). Every consumer group subscribed to the topic receives the message again; groups
            whose inbox recorded the key within its retention skip it as a duplicate, other subscribers see a
            second copy. The RocketMQ tag is not stored with a parked message and is not restored. If the key
            was processed meanwhile, it stays recorded and the new delivery is a duplicate.

Select with --id (repeatable or comma-separated), --key, or --all. Unknown ids fail the command before anything
changes. --dry-run prints what would be requeued and changes nothing.`,
		Example: `  txbox dead requeue --outbox --id 42 --id 43
  txbox dead requeue --outbox --all --dry-run
  txbox dead requeue --inbox --consumer payments --key 12345/payment`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.act(cmd, g, "requeue") },
	}
	f.register(cmd, true)
	return cmd
}

func newDeadDropCmd(g *globals) *cobra.Command {
	f := &deadFlags{}
	cmd := &cobra.Command{
		Use:   "drop",
		Short: "Delete dead letters for good",
		Long: deadLong + `

drop deletes the selected dead letters without sending them. For --inbox the key stays recorded as processed, so
later deliveries of it are acknowledged as duplicates until the inbox purge removes the key after its retention.
Select with --id (repeatable or comma-separated), --key, or --all. Unknown ids fail the command before anything
changes. --dry-run prints what would be dropped and changes nothing.`,
		Example: `  txbox dead drop --outbox --id 42
  txbox dead drop --inbox --consumer payments --all --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return f.act(cmd, g, "drop") },
	}
	f.register(cmd, true)
	return cmd
}

func (f *deadFlags) register(cmd *cobra.Command, change bool) {
	fl := cmd.Flags()
	fl.BoolVar(&f.outbox, "outbox", false, "the outbox's dead letters (<prefix>_outbox_dead)")
	fl.BoolVar(&f.inbox, "inbox", false, "the inbox's parked messages (<prefix>_inbox_dead)")
	fl.StringSliceVar(&f.consumers, "consumer", nil, "inbox consumer (repeatable; default every consumer)")
	fl.StringVar(&f.key, "key", "", "only dead letters with this business key")
	if change {
		fl.Int64SliceVar(&f.ids, "id", nil, "dead letter id (repeatable or comma-separated)")
		fl.BoolVar(&f.all, "all", false, "every dead letter of the table (and consumers)")
		fl.BoolVar(&f.dryRun, "dry-run", false, "print what would change and change nothing")
	}
}

func (f *deadFlags) validate(change bool) error {
	if f.outbox == f.inbox {
		return usageError{errors.New("choose the dead letters: --outbox or --inbox")}
	}
	if f.outbox && len(f.consumers) > 0 {
		return usageError{errors.New("--consumer applies to --inbox only")}
	}
	if change {
		n := 0
		for _, set := range []bool{len(f.ids) > 0, f.key != "", f.all} {
			if set {
				n++
			}
		}
		if n != 1 {
			return usageError{errors.New("select the dead letters with exactly one of --id, --key or --all")}
		}
	}
	if f.limit < 0 {
		return usageError{fmt.Errorf("--limit must not be negative, got %d", f.limit)}
	}
	return nil
}

// pageSize is how many dead letters one query reads.
const pageSize = 1000

// collect reads every dead letter the flags select (ids are filtered here: the tables are small, and reading
// them whole keeps one code path for --id, --key and --all).
func (f *deadFlags) collect(ctx context.Context, db *sqlx.DB, d dialect.Dialect, prefix string) ([]deadRow, error) {
	want := func(id int64, key string) bool {
		return (len(f.ids) == 0 || slices.Contains(f.ids, id)) && (f.key == "" || key == f.key)
	}
	var rows []deadRow
	if f.outbox {
		ob, err := outbox.New(outbox.Config{Dialect: d, Prefix: prefix})
		if err != nil {
			return nil, err
		}
		for after := int64(0); ; {
			page, err := ob.DeadLetters(ctx, db, after, pageSize)
			if err != nil {
				return nil, explainSchema(err)
			}
			for _, dl := range page {
				if want(dl.ID, dl.Key) {
					rows = append(rows, deadRow{Box: "outbox", ID: dl.ID, Topic: dl.Topic, Key: dl.Key, Tag: dl.Tag,
						ShardingKey: dl.ShardingKey, Attempts: dl.Attempt, LastError: dl.LastError, DeadAt: dl.DeadAt,
						PayloadBytes: len(dl.Payload), Payload: dl.Payload, Headers: dl.Headers})
				}
			}
			if len(page) < pageSize {
				return rows, nil
			}
			after = page[len(page)-1].ID
		}
	}
	consumers, err := f.inboxConsumers(ctx, db, d, prefix)
	if err != nil {
		return nil, err
	}
	for _, c := range consumers {
		ib, err := inbox.New(db, inbox.Config{Dialect: d, Prefix: prefix, Consumer: c})
		if err != nil {
			return nil, usageError{fmt.Errorf("--consumer %q: %w", c, err)}
		}
		for after := int64(0); ; {
			page, err := ib.ListDead(ctx, inbox.DeadFilter{Key: f.key, AfterID: after, Limit: pageSize})
			if err != nil {
				return nil, explainSchema(err)
			}
			for _, dl := range page {
				if want(dl.ID, dl.Delivery.Key) {
					row := deadRow{Box: "inbox", ID: dl.ID, Consumer: c, Topic: dl.Delivery.Topic,
						Key: dl.Delivery.Key, Attempts: dl.Attempts, LastError: dl.LastError, DeadAt: dl.ParkedAt,
						PayloadBytes: len(dl.Delivery.Payload), Payload: dl.Delivery.Payload, Headers: dl.Delivery.Headers}
					if tr := dl.Truncated; tr != nil {
						row.Truncated = &truncated{PayloadBytes: tr.PayloadBytes,
							PayloadSHA256: hex.EncodeToString(tr.PayloadSHA256), HeadersBytes: tr.HeadersBytes}
					}
					rows = append(rows, row)
				}
			}
			if len(page) < pageSize {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	return rows, nil
}

// inboxConsumers returns the consumers named by --consumer, or every consumer that has dead letters.
func (f *deadFlags) inboxConsumers(ctx context.Context, db *sqlx.DB, d dialect.Dialect, prefix string) ([]string, error) {
	if len(f.consumers) > 0 {
		return f.consumers, nil
	}
	st, err := readStats(ctx, db, d, prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range st.Inbox.Consumers {
		if c.Dead > 0 {
			out = append(out, c.Consumer)
		}
	}
	return out, nil
}

func (f *deadFlags) act(cmd *cobra.Command, g *globals, verb string) error {
	if err := f.validate(true); err != nil {
		return err
	}
	ctx := cmd.Context()
	db, d, err := g.openMigrated(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := f.collect(ctx, db, d, g.prefix)
	if err != nil {
		return err
	}
	if missing := f.missingIDs(rows); len(missing) > 0 {
		return fmt.Errorf("no %s dead letter with id %s: nothing changed", box(f), joinInts(missing))
	}
	out := cmd.OutOrStdout()
	if len(rows) == 0 {
		fmt.Fprintf(out, "no %s dead letters match: nothing to %s\n", box(f), verb)
		return nil
	}
	if err := printDead(out, rows); err != nil {
		return err
	}
	if f.dryRun {
		fmt.Fprintf(out, "dry run: would %s %d %s dead letter(s); nothing changed\n", verb, len(rows), box(f))
		return nil
	}
	log, err := g.logger()
	if err != nil {
		return err
	}
	n, err := f.apply(ctx, db, d, g.prefix, verb, rows, log)
	fmt.Fprintf(out, "%s: %d of %d %s dead letter(s)\n", pastTense(verb), n, len(rows), box(f))
	return err
}

func (f *deadFlags) missingIDs(rows []deadRow) []int64 {
	var missing []int64
	for _, id := range f.ids {
		if !slices.ContainsFunc(rows, func(r deadRow) bool { return r.ID == id }) {
			missing = append(missing, id)
		}
	}
	return missing
}

func box(f *deadFlags) string {
	if f.outbox {
		return "outbox"
	}
	return "inbox"
}

func pastTense(verb string) string {
	if verb == "drop" {
		return "dropped"
	}
	return verb + "d"
}

func joinInts(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ", ")
}

func printDead(w io.Writer, rows []deadRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCONSUMER\tTOPIC\tKEY\tATTEMPTS\tDEAD AT\tBYTES\tLAST ERROR")
	for _, r := range rows {
		c := r.Consumer
		if c == "" {
			c = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.ID, cell(c), cell(r.Topic), cell(r.Key), r.Attempts,
			r.DeadAt.UTC().Format(time.RFC3339), r.bytes(), oneLine(r.LastError, 80))
	}
	return tw.Flush()
}

// oneLine shortens an error text for a table cell: one line, control characters escaped, at most n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if !printable(s) {
		q := strconv.QuoteToGraphic(s)
		s = q[1 : len(q)-1]
	}
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n-3]) + "..."
	}
	return s
}

// bytes is the BYTES cell: the payload's size, or for a dead letter cut when parked, what is kept of it.
func (r deadRow) bytes() string {
	if r.Truncated != nil {
		return fmt.Sprintf("%d of %d (cut)", r.PayloadBytes, r.Truncated.PayloadBytes)
	}
	return strconv.Itoa(r.PayloadBytes)
}

// explainSchema points at `txbox migrate up` when a table is missing (migrations.Check passed, but the tables
// may have been dropped by hand or live elsewhere).
func explainSchema(err error) error {
	if errors.Is(err, dialect.ErrSchemaMissing) {
		return fmt.Errorf("%w: run `txbox migrate up`", err)
	}
	return err
}
