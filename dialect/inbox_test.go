package dialect_test

import (
	"context"
	"errors"
	"testing"

	"github.com/txbox/txbox/dialect"
)

// Inbox table names are validated before any SQL is built: a bad name fails every InboxStore method with
// ErrInvalidIdent without touching the database (the DBTX here is nil and would panic if used).
func TestInboxStoreRejectsBadTableNames(t *testing.T) {
	ctx := context.Background()
	good := dialect.InboxTables{Inbox: "txbox_inbox", Attempts: "txbox_inbox_attempts", Dead: "app.txbox_inbox_dead"}
	for _, d := range []dialect.Dialect{dialect.MySQL, dialect.Postgres} {
		for _, bad := range []dialect.InboxTables{
			{Inbox: "inbox; DROP TABLE x", Attempts: good.Attempts, Dead: good.Dead},
			{Inbox: good.Inbox, Attempts: "a-b", Dead: good.Dead},
			{Inbox: good.Inbox, Attempts: good.Attempts, Dead: ""},
		} {
			calls := map[string]func() error{
				"InboxClaim": func() error {
					_, err := d.InboxClaim(ctx, nil, &dialect.InboxClaimParams{Tables: bad})
					return err
				},
				"InboxRecordFailure": func() error {
					_, err := d.InboxRecordFailure(ctx, nil, &dialect.InboxRecordFailureParams{Tables: bad})
					return err
				},
				"InboxPark": func() error {
					_, err := d.InboxPark(ctx, nil, &dialect.InboxParkParams{Tables: bad})
					return err
				},
				"InboxDeadList": func() error {
					_, err := d.InboxDeadList(ctx, nil, &dialect.InboxDeadListParams{Tables: bad})
					return err
				},
				"InboxSettle": func() error {
					_, err := d.InboxSettle(ctx, nil, &dialect.InboxSettleParams{Tables: bad})
					return err
				},
				"InboxPurge": func() error {
					_, err := d.InboxPurge(ctx, nil, &dialect.InboxPurgeParams{Tables: bad})
					return err
				},
				"InboxCheckSchema": func() error { return d.InboxCheckSchema(ctx, nil, bad) },
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, dialect.ErrInvalidIdent) {
					t.Errorf("%s %s with tables %+v: %v, want ErrInvalidIdent", d.Name(), name, bad, err)
				}
			}
		}
	}
}
