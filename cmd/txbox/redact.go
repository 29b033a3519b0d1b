package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/txbox/txbox/dialect"
)

// mask replaces a secret wherever the CLI would otherwise print it.
const mask = "xxxxx"

// dsnTarget says where a DSN points without anything secret in it, from the driver's own parser:
// "user@tcp(127.0.0.1:3306)/app" for MySQL, "user@127.0.0.1:5432/app" for PostgreSQL. The secrets it holds (the
// password, and for PostgreSQL an sslpassword) are returned for scrubbing text the CLI did not write itself. A
// DSN the driver cannot parse gives an error that quotes nothing of it: parsers' own errors may.
func dsnTarget(d dialect.Dialect, dsn string) (where string, secrets []string, err error) {
	if d == dialect.MySQL {
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return "", mysqlPasswordGuess(dsn), fmt.Errorf("not a MySQL DSN the driver accepts (user:password@tcp(host:port)/database?param=value): %w", scrubbedError{err, mysqlPasswordGuess(dsn)})
		}
		return fmt.Sprintf("%s@%s(%s)/%s", cfg.User, cfg.Net, cfg.Addr, cfg.DBName), nonEmpty(cfg.Passwd), nil
	}
	secrets = pgSSLPasswords(dsn)
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", secrets, errors.New("not a PostgreSQL DSN the driver accepts (postgres://user:password@host:port/database?sslmode=... or host=... user=... dbname=...)")
	}
	secrets = append(secrets, nonEmpty(cfg.Password)...)
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database), secrets, nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// mysqlPasswordGuess returns what go-sql-driver/mysql would take as the password of a DSN it cannot parse
// (between the first ':' and the last '@' before the last '/'), to keep it out of its error.
func mysqlPasswordGuess(dsn string) []string {
	slash := strings.LastIndex(dsn, "/")
	if slash < 0 {
		slash = len(dsn)
	}
	at := strings.LastIndex(dsn[:slash], "@")
	if at < 0 {
		return nil
	}
	_, pw, _ := strings.Cut(dsn[:at], ":")
	return nonEmpty(pw)
}

// pgSSLKeyword matches sslpassword in libpq's keyword/value form: quoted with backslash escapes, or up to the
// next space.
var pgSSLKeyword = regexp.MustCompile(`(?:^|\s)sslpassword\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))`)

// pgSSLPasswords finds the sslpassword of a PostgreSQL DSN (the passphrase of a client key), which pgconn.Config
// does not expose.
func pgSSLPasswords(dsn string) []string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return nil
		}
		return u.Query()["sslpassword"]
	}
	var out []string
	for _, m := range pgSSLKeyword.FindAllStringSubmatch(dsn, -1) {
		v := m[2]
		if m[1] != "" {
			v = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(m[1])
		}
		out = append(out, v)
	}
	return out
}

// scrubber removes known secrets from text the CLI passes on: driver errors (where a command wraps them, in
// /readyz answers, in log records' error values). The CLI's own messages never contain secrets and are not
// scrubbed, so that a password that is also a common word ("txbox") does not mangle them.
type scrubber struct {
	mu      sync.RWMutex
	secrets []string
}

// add registers secrets, in every spelling a DSN or a driver may show them in.
func (s *scrubber) add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range secrets {
		if v == "" {
			continue
		}
		keyword := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) // libpq's quoted keyword value
		s.secrets = append(s.secrets, v, url.QueryEscape(v), url.PathEscape(v), url.UserPassword("", v).String()[1:],
			keyword)
	}
}

// text returns s with every secret replaced by mask.
func (s *scrubber) text(in string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, v := range s.secrets {
		if v != "" && strings.Contains(in, v) {
			in = strings.ReplaceAll(in, v, mask)
		}
	}
	return in
}

// error wraps err so that its text is scrubbed; errors.Is and errors.As still see err.
func (s *scrubber) error(err error) error {
	if err == nil {
		return nil
	}
	s.mu.RLock()
	secrets := append([]string(nil), s.secrets...)
	s.mu.RUnlock()
	return scrubbedError{err, secrets}
}

type scrubbedError struct {
	err     error
	secrets []string
}

func (e scrubbedError) Error() string {
	msg := e.err.Error()
	for _, v := range e.secrets {
		if v != "" {
			msg = strings.ReplaceAll(msg, v, mask)
		}
	}
	return msg
}

func (e scrubbedError) Unwrap() error { return e.err }

// replaceAttr scrubs the error values of log records (errors, and strings under the keys "error" and "err", as
// the broker client's records carry them).
func (s *scrubber) replaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch {
	case a.Value.Kind() == slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			a.Value = slog.StringValue(s.text(err.Error()))
		}
	case a.Value.Kind() == slog.KindString && (a.Key == "error" || a.Key == "err"):
		a.Value = slog.StringValue(s.text(a.Value.String()))
	}
	return a
}
