package main_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/txbox/txbox/internal/testdb"
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
	}
	forbidden := []string{wrongPassword, url.QueryEscape(wrongPassword), url.PathEscape(wrongPassword), "Wr0ng", "w0rd"}
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		for form, dsn := range wrongDSNs(t, db) {
			for _, args := range commands {
				r := run(t, nil, []string{"TXBOX_DIALECT=" + db.Dialect.Name(), "TXBOX_DSN=" + dsn}, args...)
				out := r.stdout + r.stderr
				if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the "+db.Dialect.Name()+" database at ") {
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
