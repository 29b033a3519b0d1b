package main_test

import (
	"strings"
	"testing"

	"github.com/txbox/txbox/internal/testdb"
)

func TestMigrateUpAndStatus(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		r := run(t, db, nil, "migrate", "status")
		if r.code != 1 || !strings.Contains(r.stdout, "pending") || !strings.Contains(r.stderr, "txbox migrate up") {
			t.Fatalf("status before up: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		for range 2 { // idempotent
			r = run(t, db, nil, "migrate", "up")
			if r.code != 0 || !strings.Contains(r.stdout, "txbox schema is at version") {
				t.Fatalf("migrate up: code %d\n%s%s", r.code, r.stdout, r.stderr)
			}
		}
		r = run(t, db, nil, "migrate", "status")
		if r.code != 0 || strings.Contains(r.stdout, "pending") || !strings.Contains(r.stdout, "00001_outbox.sql") {
			t.Fatalf("status after up: code %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	}, testdb.Unmigrated())
}

func TestCLIErrors(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"unknown flag", nil, []string{"status", "--bogus"}, 2, "unknown flag"},
		{"no dialect", []string{"TXBOX_DIALECT=", "TXBOX_DSN=x"}, []string{"status"}, 2, "--dialect"},
		{"bad dialect", []string{"TXBOX_DSN=x"}, []string{"status", "--dialect", "oracle"}, 2, "oracle"},
		{"no dsn", []string{"TXBOX_DSN="}, []string{"status", "--dialect", "mysql"}, 2, "--dsn"},
		{"unreachable postgres", nil, []string{"status", "--dialect", "postgres", "--connect-timeout", "5s",
			"--dsn", "postgres://u:secret@127.0.0.1:1/x?sslmode=disable"}, 1, "cannot reach the postgres database"},
		{"unreachable mysql", nil, []string{"migrate", "up", "--dialect", "mysql", "--connect-timeout", "5s",
			"--dsn", "u:secret@tcp(127.0.0.1:1)/x"}, 1, "cannot reach the mysql database"},
		{"relay without name server", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql", "TXBOX_ROCKETMQ_NAMESRV="}, []string{"relay"}, 2, "--namesrv"},
		{"relay name server by host name", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"relay", "--namesrv", "localhost:9876"}, 2, "literal IP:port"},
		{"relay bad workers", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"relay", "--namesrv", "127.0.0.1:9876", "--workers", "0"}, 2, "--workers"},
		{"relay poll intervals", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"relay", "--namesrv", "127.0.0.1:9876", "--min-poll-interval", "2s", "--max-poll-interval", "1s"}, 2, "--max-poll-interval"},
		{"relay poll interval below its floor", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"relay", "--namesrv", "127.0.0.1:9876", "--min-poll-interval", "1ns"}, 2, "at least 1ms"},
		{"relay negative retention", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"relay", "--namesrv", "127.0.0.1:9876", "--retention", "-1h"}, 2, "--retention must not be negative"},
		{"dead without table", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"dead", "list"}, 2, "--outbox or --inbox"},
		{"dead requeue without selection", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"dead", "requeue", "--outbox"}, 2, "--id, --key or --all"},
		{"dead consumer on outbox", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"dead", "drop", "--outbox", "--consumer", "c", "--all"}, 2, "--inbox only"},
		{"dead bad id", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"dead", "drop", "--outbox", "--id", "x"}, 2, "--id"},
		{"purge without duration", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"inbox", "purge"}, 2, "--older-than is required"},
		{"purge negative", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"inbox", "purge", "--older-than", "-1h"}, 2, "must be positive"},
		{"purge too short", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"inbox", "purge", "--older-than", "10m"}, 2, "at least 1h"},
		{"purge bad days", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"inbox", "purge", "--older-than", "1.5d"}, 2, "whole number of days"},
		{"bad log level", []string{"TXBOX_DSN=x", "TXBOX_DIALECT=mysql"}, []string{"status", "--log-level", "loud"}, 2, "log-level"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := run(t, nil, c.env, c.args...)
			if r.code != c.code || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, c.code, r.stderr, c.want)
			}
			if strings.Contains(r.stderr, "secret") {
				t.Errorf("password printed: %s", r.stderr)
			}
		})
	}
}

func TestHelpExplainsEachCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"migrate", "--help"}, {"migrate", "up", "--help"}, {"migrate", "status", "--help"},
		{"status", "--help"}, {"relay", "--help"}, {"dead", "list", "--help"}, {"dead", "requeue", "--help"},
		{"dead", "--help"}, {"dead", "drop", "--help"}, {"inbox", "--help"}, {"inbox", "purge", "--help"}} {
		// Secrets in the environment must not show up as flag defaults.
		r := run(t, nil, []string{"TXBOX_DSN=u:s3cr3t-marker@tcp(127.0.0.1:1)/x", "TXBOX_ROCKETMQ_SECRET_KEY=s3cr3t-marker"}, args...)
		if strings.Contains(r.stdout, "s3cr3t-marker") {
			t.Errorf("%v: help prints a secret from the environment:\n%s", args, r.stdout)
		}
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("%v: code %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%v: help has no example:\n%s", args, r.stdout)
		}
	}
}
