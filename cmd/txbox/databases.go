package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/jmoiron/sqlx"
	"go.yaml.in/yaml/v3"

	"github.com/txbox/txbox/dialect"
)

// A databases file names the txbox installations a command works on, one entry per database. txbox trace
// and txbox console read it with --databases FILE (or TXBOX_DATABASES); without one they work on the single
// database of --dialect and --dsn, named "default".
//
//	# txbox databases
//	databases:
//	  - name: orders                  # required, unique: 1 to 64 of A-Z a-z 0-9 . _ -
//	    dialect: mysql                # mysql, mariadb or postgres
//	    dsn: ${ORDERS_DSN}            # ${NAME} is the environment variable NAME
//	  - name: payments
//	    dialect: postgres
//	    dsn: postgres://app:${PAYMENTS_PASSWORD}@10.0.0.7:5432/payments?sslmode=require
//	    prefix: billing.txbox         # the installation's table prefix; default --prefix (txbox)
//
// Secrets stay out of the file: ${NAME} in a DSN is replaced by the environment variable NAME (letters,
// digits and underscores), and an unset one is an error naming the variable and the entry. "$$" is a literal
// "$"; any other "$" is kept as it is, so passwords holding one need no quoting. Unknown fields are errors
// (a misspelt "prefix" would otherwise silently name another installation). A DSN is never printed: messages
// name the entry, and show a DSN only through dsnWhere.
//
// The file is read by loadDatabases; txbox relay will read the same file to run one relay per entry.

// databaseEntry is one entry of a databases file, its DSN expanded.
type databaseEntry struct {
	Name    string
	Dialect dialect.Dialect
	DSN     string // holds a password: never print it (dsnWhere; secrets registered with the scrubber)
	Prefix  string
}

// databasesFile is the file's YAML shape.
type databasesFile struct {
	Databases []struct {
		Name    string `yaml:"name"`
		Dialect string `yaml:"dialect"`
		DSN     string `yaml:"dsn"`
		Prefix  string `yaml:"prefix"`
	} `yaml:"databases"`
}

var entryName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// loadDatabases reads the databases file at path; entries without a prefix get defaultPrefix.
func loadDatabases(path, defaultPrefix string) ([]databaseEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{fmt.Errorf("--databases: %w", err)}
	}
	return parseDatabases(data, path, defaultPrefix, os.LookupEnv)
}

// parseDatabases parses a databases file's contents; source names it in errors, getenv expands ${NAME}.
func parseDatabases(data []byte, source, defaultPrefix string, getenv func(string) (string, bool)) ([]databaseEntry, error) {
	bad := func(format string, args ...any) error {
		return usageError{fmt.Errorf("databases file %s: "+format, append([]any{source}, args...)...)}
	}
	var f databasesFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // an empty file: no databases, below
		// yaml's messages quote the offending line only for syntax errors, which hold no expanded secret.
		return nil, bad("%v", err)
	}
	if len(f.Databases) == 0 {
		return nil, bad("no databases: want a list under \"databases:\"")
	}
	seen := map[string]bool{}
	out := make([]databaseEntry, 0, len(f.Databases))
	for i, e := range f.Databases {
		switch {
		case !entryName.MatchString(e.Name):
			return nil, bad("entry %d: name %q: want 1 to 64 of A-Z a-z 0-9 . _ -", i+1, e.Name)
		case seen[e.Name]:
			return nil, bad("entry %d: name %q is used twice", i+1, e.Name)
		}
		seen[e.Name] = true
		d, err := dialect.Parse(e.Dialect)
		if err != nil {
			return nil, bad("database %s: %v", e.Name, err)
		}
		dsn, err := expandEnv(e.DSN, getenv)
		if err != nil {
			return nil, bad("database %s: dsn: %v", e.Name, err)
		}
		if strings.TrimSpace(dsn) == "" {
			return nil, bad("database %s: no dsn", e.Name)
		}
		prefix := e.Prefix
		if prefix == "" {
			prefix = defaultPrefix
		}
		if _, err := dialect.TablesFor(prefix); err != nil {
			return nil, bad("database %s: prefix: %v", e.Name, err)
		}
		out = append(out, databaseEntry{Name: e.Name, Dialect: d, DSN: dsn, Prefix: prefix})
	}
	return out, nil
}

var envRef = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandEnv replaces ${NAME} with the environment variable NAME and "$$" with "$"; any other "$" stays.
func expandEnv(s string, getenv func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 || i == len(s)-1 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			s = s[i+2:]
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", errors.New("unterminated ${ (want ${NAME})")
			}
			name := s[i+2 : i+end]
			if !envRef.MatchString(name) {
				return "", fmt.Errorf("${%s}: not a variable name (letters, digits, underscores)", name)
			}
			v, ok := getenv(name)
			if !ok {
				return "", fmt.Errorf("environment variable %s is not set", name)
			}
			b.WriteString(v)
			s = s[i+end+1:]
		default:
			b.WriteByte('$')
			s = s[i+1:]
		}
	}
}

// databases returns the entries of --databases (or TXBOX_DATABASES), or the single database of --dialect and
// --dsn named "default". It refuses both at once.
func (g *globals) databases(path string, explicitDB bool) ([]databaseEntry, error) {
	if path != "" {
		if explicitDB {
			return nil, usageError{errors.New("--databases and --dialect/--dsn exclude each other")}
		}
		entries, err := loadDatabases(path, g.prefix)
		for _, e := range entries {
			_, secrets, _ := dsnTarget(e.Dialect, e.DSN)
			g.scrub.add(secrets...) // drivers' errors and log records pass through the scrubber
		}
		return entries, err
	}
	if g.dialect == "" {
		return nil, usageError{errors.New("no database: pass --databases FILE (or TXBOX_DATABASES), or --dialect and --dsn (TXBOX_DIALECT, TXBOX_DSN)")}
	}
	d, err := dialect.Parse(g.dialect)
	if err != nil {
		return nil, usageError{err}
	}
	if g.dsn == "" {
		g.dsn = os.Getenv("TXBOX_DSN")
	}
	if g.dsn == "" {
		return nil, usageError{errors.New("no database: pass --dsn or set TXBOX_DSN")}
	}
	_, secrets, _ := dsnTarget(d, g.dsn)
	g.scrub.add(secrets...)
	return []databaseEntry{{Name: "default", Dialect: d, DSN: g.dsn, Prefix: g.prefix}}, nil
}

// dsnWhere says where a DSN points, without its secrets (dsnTarget), or that the driver cannot parse it.
func dsnWhere(d dialect.Dialect, dsn string) string {
	where, _, err := dsnTarget(d, dsn)
	if err != nil {
		return "a DSN the driver does not accept"
	}
	return where
}

// openEntry opens a pool on e without connecting (sql.Open never does): a database that is down shows as an
// error where it is used, and the others still work.
func openEntry(e databaseEntry) (*sqlx.DB, error) {
	driver := "mysql"
	if e.Dialect == dialect.Postgres {
		driver = "pgx"
	}
	db, err := sqlx.Open(driver, e.DSN)
	if err != nil {
		_, secrets, _ := dsnTarget(e.Dialect, e.DSN)
		return nil, usageError{fmt.Errorf("database %s (%s): %w", e.Name, dsnWhere(e.Dialect, e.DSN), scrubbedError{err, secrets})}
	}
	return db, nil
}
