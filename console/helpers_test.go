package console_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

func TestMain(m *testing.M) { testdb.Main(m, rmqtest.LeakOptions()...) }

const token = "test-token-0123456789abcdef"

// env is a console over one or more test databases, served by an httptest server.
type env struct {
	t   *testing.T
	c   *console.Console
	srv *httptest.Server
	dbs map[string]*testdb.DB
}

// newEnv serves a console over dbs (named by the map) with cfg's other fields.
func newEnv(t *testing.T, cfg console.Config, dbs map[string]*testdb.DB, order ...string) *env {
	t.Helper()
	for _, name := range order {
		db := dbs[name]
		cfg.Databases = append(cfg.Databases, console.Database{Name: name, DB: db.DB, Dialect: db.Dialect})
	}
	c, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return &env{t: t, c: c, srv: srv, dbs: dbs}
}

// one serves a console with the token over a single database named "db".
func one(t *testing.T, db *testdb.DB, cfg console.Config) *env {
	t.Helper()
	if cfg.Token == "" && !cfg.ReadOnly {
		cfg.Token = token
	}
	return newEnv(t, cfg, map[string]*testdb.DB{"db": db}, "db")
}

type response struct {
	code int
	body string
	hdr  http.Header
}

// do sends a request to the console; hdr holds extra headers ("Authorization", "Origin", ...).
func (e *env) do(method, path, body string, hdr map[string]string) response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b), resp.Header}
}

// api sends an authorized JSON request and decodes the answer into out, failing the test unless the status
// is want.
func (e *env) api(method, path string, in, out any, want int) {
	e.t.Helper()
	var body string
	hdr := map[string]string{"Authorization": "Bearer " + token}
	if in != nil {
		b, _ := json.Marshal(in)
		body, hdr["Content-Type"] = string(b), "application/json"
	}
	r := e.do(method, path, body, hdr)
	if r.code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.code, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(r.body), out); err != nil {
			e.t.Fatalf("%s %s: decode %T: %v\n%s", method, path, out, err, r.body)
		}
	}
}

// login posts the token to /login as a page of this site would and returns the session cookie.
func (e *env) login() *http.Cookie {
	e.t.Helper()
	r := e.do("POST", "/login", url.Values{"token": {token}, "next": {"/dead"}}.Encode(),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": e.srv.URL})
	if r.code != http.StatusSeeOther {
		e.t.Fatalf("login: status %d: %s", r.code, r.body)
	}
	for _, ck := range (&http.Response{Header: r.hdr}).Cookies() {
		if ck.Name == "txbox_console" && ck.Value != "" {
			return ck
		}
	}
	e.t.Fatalf("login set no session cookie: %v", r.hdr)
	return nil
}

// csrf reads the CSRF token of the session from a page's forms.
func (e *env) csrf(ck *http.Cookie) string {
	e.t.Helper()
	r := e.do("GET", "/dead", "", map[string]string{"Cookie": ck.String()})
	_, after, ok := strings.Cut(r.body, `name="csrf" value="`)
	if !ok {
		e.t.Fatalf("no CSRF token in the page:\n%s", r.body)
	}
	v, _, _ := strings.Cut(after, `"`)
	return v
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func enqueue(t *testing.T, db *testdb.DB, msgs ...outbox.Message) {
	t.Helper()
	ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(context.Background(), db.DB, msgs...); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

// bury enqueues msgs and moves them to the outbox's dead-letter table through a relay whose publisher always
// fails, and returns their dead-letter ids in order.
func bury(t *testing.T, db *testdb.DB, msgs ...outbox.Message) []int64 {
	t.Helper()
	enqueue(t, db, msgs...)
	poison := relay.PublisherFunc(func(context.Context, outbox.Record) error {
		return fmt.Errorf("%w: broker says no", relay.ErrPermanent)
	})
	r, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Publisher: poison, MaxAttempts: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Drain(context.Background()); err != nil {
		t.Fatalf("drain into the dead-letter table: %v", err)
	}
	var ids []int64
	for _, m := range msgs {
		var id int64
		if err := db.QueryRowContext(context.Background(), db.Rebind("SELECT id FROM txbox_outbox_dead WHERE msg_key = ?"),
			m.Key).Scan(&id); err != nil {
			t.Fatalf("dead letter of %q: %v", m.Key, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// park parks d for consumer the way a handler that keeps failing does, and returns the dead letter's id.
func park(t *testing.T, db *testdb.DB, consumer string, d inbox.Delivery) int64 {
	t.Helper()
	ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: consumer, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ib.Process(context.Background(), d, func(context.Context, *sqlx.Tx) error { return errors.New("handler says no") })
	if res != inbox.Parked || err != nil {
		t.Fatalf("park %q: %v, %v", d.Key, res, err)
	}
	dead, err := ib.ListDead(context.Background(), inbox.DeadFilter{Key: d.Key})
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letter of %q: %v, %v", d.Key, dead, err)
	}
	return dead[0].ID
}

// count runs a COUNT(*) query written with '?' placeholders.
func count(t *testing.T, db *testdb.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), db.Rebind(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// ids returns the ids of a table's rows matching where, ascending.
func ids(t *testing.T, db *testdb.DB, table, where string, args ...any) []int64 {
	t.Helper()
	var out []int64
	if err := db.SelectContext(context.Background(), &out, db.Rebind("SELECT id FROM "+table+" WHERE "+where+" ORDER BY id"),
		args...); err != nil {
		t.Fatal(err)
	}
	return out
}

// targets are the databases the API tests run on: MariaDB and PostgreSQL through pgx.
var targets = []testdb.Target{testdb.Targets[0], testdb.Targets[2]}

// onTargets runs fn as a parallel subtest per target.
func onTargets(t *testing.T, fn func(t *testing.T, tg testdb.Target)) {
	for _, tg := range targets {
		t.Run(tg.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, tg)
		})
	}
}
