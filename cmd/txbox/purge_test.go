package main_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

// purge deletes only keys older than --older-than, per consumer, and keeps parked keys.
func TestInboxPurgeRemovesOnlyExpiredKeys(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		process(t, db, "c1", "old-1", "old-2", "new-1")
		process(t, db, "c2", "old-3", "new-2")
		park(t, db, "c1", inbox.Delivery{Key: "old-parked", Payload: []byte("x"), Topic: "t"})
		backdate := "UPDATE txbox_inbox SET received_at = received_at - INTERVAL 2 DAY WHERE msg_key LIKE 'old%'"
		if db.Dialect.Name() == "postgres" {
			backdate = "UPDATE txbox_inbox SET received_at = received_at - interval '2 days' WHERE msg_key LIKE 'old%'"
		}
		if _, err := db.ExecContext(context.Background(), backdate); err != nil {
			t.Fatal(err)
		}

		r := run(t, db, nil, "inbox", "purge", "--older-than", "1d", "--consumer", "c2")
		if r.code != 0 || !regexp.MustCompile(`(?m)^c2\s+1\ntotal\s+1$`).MatchString(r.stdout) {
			t.Fatalf("purge c2: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = run(t, db, nil, "inbox", "purge", "--older-than", "36h")
		if r.code != 0 || !regexp.MustCompile(`(?m)^c1\s+2\nc2\s+0\ntotal\s+2$`).MatchString(r.stdout) {
			t.Fatalf("purge all: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		rows, err := db.QueryxContext(context.Background(), "SELECT consumer, msg_key FROM txbox_inbox ORDER BY consumer, msg_key")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var left []string
		for rows.Next() {
			var c, k string
			if err := rows.Scan(&c, &k); err != nil {
				t.Fatal(err)
			}
			left = append(left, c+"/"+k)
		}
		if got := strings.Join(left, " "); got != "c1/new-1 c1/old-parked c2/new-2" {
			t.Fatalf("keys left: %s", got)
		}
	})
}
