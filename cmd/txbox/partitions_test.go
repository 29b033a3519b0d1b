package main_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/txbox/txbox/internal/testdb"
)

// partitions status, maintain and the inbox's conversion through the CLI: an unpartitioned installation
// converts (start, finish refused too early, abort, start again), and a partitioned one shows its partitions
// and empties the catch-all.
func TestPartitionsCommands(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		r := run(t, db, nil, "partitions", "status")
		if r.code != 0 || !regexp.MustCompile(`(?m)^inbox\s+unpartitioned\s+-\s+-`).MatchString(r.stdout) {
			t.Fatalf("status of an unpartitioned installation: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r = run(t, db, nil, "partitions", "convert", "inbox", "start"); r.code != 2 || !strings.Contains(r.stderr, "--retention") {
			t.Fatalf("start without a retention: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r = run(t, db, nil, "partitions", "convert", "inbox", "start", "--retention", "7d"); r.code != 0 ||
			!strings.Contains(r.stdout, "converting since") {
			t.Fatalf("start: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r = run(t, db, nil, "partitions", "convert", "inbox", "finish"); r.code != 1 || !strings.Contains(r.stderr, "too early") {
			t.Fatalf("finish at once: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r = run(t, db, nil, "partitions", "convert", "inbox", "abort"); r.code != 0 {
			t.Fatalf("abort: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r = run(t, db, nil, "partitions", "convert", "published", "--retention", "1d"); r.code != 0 {
			t.Fatalf("convert published: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = run(t, db, nil, "partitions", "status")
		if r.code != 0 || !regexp.MustCompile(`(?m)^published\s+partitioned\s+3h\s+1d\s+\d+\s`).MatchString(r.stdout) {
			t.Fatalf("status after the published table converted: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}, testdb.Partitioned(false))

	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		process(t, db, "c", "k1", "k2") // no partitions yet: the catch-all takes the keys
		r := run(t, db, nil, "partitions", "status")
		if r.code != 1 || !strings.Contains(r.stderr, "catch-all") || !regexp.MustCompile(`(?m)^inbox\s+partitioned\s+1d\s+7d\s+0\s+-\s+-\s+2$`).MatchString(r.stdout) {
			t.Fatalf("status with keys in the catch-all: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		r = run(t, db, nil, "partitions", "maintain", "--table", "inbox")
		if r.code != 0 || !regexp.MustCompile(`inbox: \d+ partitions created, 0 dropped, 0 parked keys carried forward, 0 rows in the catch-all`).MatchString(r.stdout) {
			t.Fatalf("maintain: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r = run(t, db, nil, "partitions", "status"); r.code != 0 {
			t.Fatalf("status after maintain: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		var n int
		if err := db.QueryRowContext(context.Background(), "SELECT COUNT(DISTINCT msg_key) FROM txbox_inbox_keys").Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d keys (%v), want 2", n, err)
		}
	}, testdb.Partitioned(true))
}
