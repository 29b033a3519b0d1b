package main_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// wrongPassword is not the test user's password: every command fails to connect with it.
const wrongPassword = "Wr0ng-pa55/w0rd"

// wrongDSNs returns the forms of a DSN with a wrong password that the CLI's driver for tg accepts.
func wrongDSNs(t *testing.T, db *testdb.DB) map[string]string {
	t.Helper()
	if db.Dialect.Name() == "mysql" {
		cfg, err := mysql.ParseDSN(db.DSN)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Passwd = wrongPassword
		return map[string]string{"user:password@": cfg.FormatDSN()}
	}
	u, err := url.Parse(db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	user := u.User.Username()
	withPw := *u
	withPw.User = url.UserPassword(user, wrongPassword)
	inQuery := *u
	inQuery.User = url.User(user)
	q := inQuery.Query()
	q.Set("password", wrongPassword)
	inQuery.RawQuery = q.Encode()
	return map[string]string{
		"url user:password@": withPw.String(),
		"url ?password=":     inQuery.String(),
		"keyword/value": fmt.Sprintf("host=%s port=%s user=%s password='%s' dbname=%s sslmode=disable",
			u.Hostname(), u.Port(), user, wrongPassword, strings.TrimPrefix(u.Path, "/")),
	}
}

// Issue 11, item 3: with a wrong password in any DSN form, every command that connects fails with exit status 1
// and a message saying where it could not connect, and neither the password nor its escaped forms appear in
// anything it prints (errors, logs).
func TestNoPasswordInOutput(t *testing.T) {
	commands := [][]string{
		{"status"}, {"status", "--json"}, {"migrate", "up"}, {"migrate", "status"}, {"dead", "list", "--outbox"},
		{"dead", "requeue", "--inbox", "--all"}, {"inbox", "purge", "--older-than", "7d"},
		{"relay", "--namesrv", "127.0.0.1:9876", "--log-level", "debug"},
		{"trace", "some-key"}, {"trace", "--json", "some-key"},
	}
	forbidden := []string{wrongPassword, url.QueryEscape(wrongPassword), url.PathEscape(wrongPassword), "Wr0ng", "w0rd"}
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		for form, dsn := range wrongDSNs(t, db) {
			for _, args := range commands {
				r := run(t, nil, []string{"TXBOX_DIALECT=" + db.Dialect.Name(), "TXBOX_DSN=" + dsn}, args...)
				out := r.stdout + r.stderr
				want := "cannot reach the " + db.Dialect.Name() + " database at "
				if args[0] == "trace" { // a trace reads every database it can and says which it could not
					want = "could not read default"
				}
				if r.code != 1 || !strings.Contains(r.stderr, want) {
					t.Errorf("%s, %v: exit %d, want 1 with where it could not connect:\n%s", form, args, r.code, out)
				}
				for _, f := range forbidden {
					if strings.Contains(out, f) {
						t.Errorf("%s, %v: the output shows %q:\n%s", form, args, f, out)
					}
				}
			}
		}
	})
}

// hostile is text a producer or broker can put into a topic, key or consumer name: a terminal title change, a
// bell, a screen clear, a C1 CSI (U+009B) and DEL.
const hostile = "\x1b]0;PWNED\a\x1b[2J\u009b31m\x7f"

// rawControl reports the first control byte (other than newline and tab) or C1 control character in out.
func rawControl(out string) (string, bool) {
	for i, r := range out {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return fmt.Sprintf("%q at offset %d", r, i), true
		}
		if r == utf8.RuneError {
			return fmt.Sprintf("invalid UTF-8 at offset %d", i), true
		}
	}
	return "", false
}

// Issue 11, item 4: topics, keys, consumer names and error texts with escape sequences are shown escaped in every
// command's output, table and JSON: nothing reaches the terminal raw (cat -v would show no ^[ or ^G), and the
// values are still there to read.
func TestNoRawControlCharactersInOutput(t *testing.T) {
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		topic, key, consumer := "orders"+hostile, "12345/paid"+hostile, "payments"+hostile
		bury(t, db, outbox.Message{Topic: topic, Key: key, Payload: []byte("x")})
		enqueue(t, db, outbox.Message{Topic: topic, Key: key + "-pending"})
		ib := newInbox(t, db, consumer, inbox.Config{MaxAttempts: 1})
		res, err := ib.Process(context.Background(), inbox.Delivery{Key: key, Payload: []byte("y"), Topic: topic},
			func(context.Context, *sqlx.Tx) error { return errors.New("handler failed: " + hostile) })
		if res != inbox.Parked || err != nil {
			t.Fatalf("park: %v, %v", res, err)
		}
		for _, args := range [][]string{
			{"status"}, {"status", "--json"}, {"migrate", "status"},
			{"dead", "list", "--outbox"}, {"dead", "list", "--outbox", "--json"},
			{"dead", "list", "--inbox"}, {"dead", "list", "--inbox", "--json", "--payload"},
			{"dead", "requeue", "--outbox", "--all", "--dry-run"}, {"dead", "drop", "--inbox", "--all", "--dry-run"},
			{"dead", "list", "--inbox", "--consumer", consumer, "--key", key},
			{"inbox", "purge", "--older-than", "7d", "--log-level", "debug"},
		} {
			r := run(t, db, nil, args...)
			if r.code != 0 {
				t.Errorf("%v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
			}
			if where, found := rawControl(r.stdout + r.stderr); found {
				t.Errorf("%v prints a raw control character (%s):\n%q", args, where, r.stdout+r.stderr)
			}
			if strings.HasPrefix(args[0], "dead") || args[0] == "status" {
				if !strings.Contains(r.stdout, `PWNED`) {
					t.Errorf("%v does not show the escaped values:\n%s", args, r.stdout)
				}
			}
		}
	})
}
