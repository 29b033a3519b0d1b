package console_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

func TestConfigValidation(t *testing.T) {
	db := testdb.Open(t, testdb.Targets[0])
	ok := []console.Database{{Name: "orders", DB: db.DB, Dialect: dialect.MySQL}}
	for name, tc := range map[string]struct {
		cfg   console.Config
		field string
	}{
		"no databases":    {console.Config{Token: token}, "Databases"},
		"bad name":        {console.Config{Token: token, Databases: []console.Database{{Name: "a b", DB: db.DB, Dialect: dialect.MySQL}}}, "Name"},
		"twice":           {console.Config{Token: token, Databases: append(ok, ok...)}, "used twice"},
		"no pool":         {console.Config{Token: token, Databases: []console.Database{{Name: "x", Dialect: dialect.MySQL}}}, "DB is required"},
		"no dialect":      {console.Config{Token: token, Databases: []console.Database{{Name: "x", DB: db.DB}}}, "Dialect"},
		"bad prefix":      {console.Config{Token: token, Databases: []console.Database{{Name: "x", DB: db.DB, Dialect: dialect.MySQL, Prefix: "A"}}}, "Prefix"},
		"no token":        {console.Config{Databases: ok}, "Token is required"},
		"short token":     {console.Config{Databases: ok, Token: "short"}, "Token must be at least"},
		"base path":       {console.Config{Databases: ok, Token: token, BasePath: "txbox/"}, "BasePath"},
		"page size":       {console.Config{Databases: ok, Token: token, PageSize: 1001}, "PageSize"},
		"trace limit":     {console.Config{Databases: ok, Token: token, TraceLimit: -1}, "TraceLimit"},
		"negative expiry": {console.Config{Databases: ok, Token: token, SessionTTL: -1}, "SessionTTL"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := console.New(tc.cfg)
			if !errors.Is(err, console.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want ErrInvalidConfig naming %s", err, tc.field)
			}
		})
	}
	if _, err := console.New(console.Config{Databases: ok, ReadOnly: true}); err != nil {
		t.Errorf("read-only without a token: %v", err)
	}
}

// deadState sets up dead letters in both tables of db: outbox o1..o4 (o4 on topic "billing"), inbox p1, p2
// (consumer c1) and p3 (consumer c2).
type deadState struct {
	outbox []int64 // o1..o4
	inbox  []int64 // p1, p2, p3
}

func setUpDead(t *testing.T, db *testdb.DB) deadState {
	t.Helper()
	var s deadState
	s.outbox = bury(t, db, outbox.Message{Topic: "orders", Key: "o1"}, outbox.Message{Topic: "orders", Key: "o2"},
		outbox.Message{Topic: "orders", Key: "o3"}, outbox.Message{Topic: "billing", Key: "o4"})
	s.inbox = []int64{
		park(t, db, "c1", inbox.Delivery{Key: "p1", Payload: []byte("one"), Topic: "t1", Headers: map[string]string{"h": "v"}}),
		park(t, db, "c1", inbox.Delivery{Key: "p2", Payload: []byte("two"), Topic: "t1"}),
		park(t, db, "c2", inbox.Delivery{Key: "p3", Payload: []byte("three"), Topic: "t2"}),
	}
	return s
}

func deadIDs(t *testing.T, db *testdb.DB, table string) []int64 { return ids(t, db, table, "1 = 1") }

// TestApplyChangesExactlyTheNamedRows: requeue, replay and drop change the dead letters named and no other
// row; an unknown id changes nothing at all; a dry run changes nothing; "all" takes the filter's matches only.
func TestApplyChangesExactlyTheNamedRows(t *testing.T) {
	onTargets(t, func(t *testing.T, tg testdb.Target) {
		db := testdb.Open(t, tg)
		s := setUpDead(t, db)
		e := one(t, db, console.Config{})
		var res console.Result

		// Unknown id: 404, nothing changed.
		e.api("POST", "/api/v1/dead/requeue", map[string]any{"db": "db", "box": "outbox", "ids": []int64{s.outbox[0], 999999}},
			nil, http.StatusNotFound)
		// An id outside the filter counts as unknown.
		e.api("POST", "/api/v1/dead/requeue", map[string]any{"db": "db", "box": "outbox", "topic": "billing",
			"ids": []int64{s.outbox[0]}}, nil, http.StatusNotFound)
		// Dry run: the selection, nothing changed.
		e.api("POST", "/api/v1/dead/requeue", map[string]any{"db": "db", "box": "outbox", "ids": []int64{s.outbox[0]},
			"dry_run": true}, &res, 200)
		if len(res.Selected) != 1 || res.Selected[0].Key != "o1" || res.Changed != 0 || !res.DryRun {
			t.Fatalf("dry run = %+v", res)
		}
		if got := deadIDs(t, db, "txbox_outbox_dead"); !slices.Equal(got, s.outbox) {
			t.Fatalf("after refusals and a dry run, outbox dead letters = %v, want %v", got, s.outbox)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox"); n != 0 {
			t.Fatalf("after refusals and a dry run, %d rows in the outbox", n)
		}

		// Requeue o1: o1 alone goes back into the outbox.
		e.api("POST", "/api/v1/dead/requeue", map[string]any{"db": "db", "box": "outbox", "ids": []int64{s.outbox[0]}}, &res, 200)
		if res.Changed != 1 || len(res.Selected) != 1 {
			t.Fatalf("requeue = %+v", res)
		}
		if got := deadIDs(t, db, "txbox_outbox_dead"); !slices.Equal(got, s.outbox[1:]) {
			t.Errorf("outbox dead letters after requeue = %v, want %v", got, s.outbox[1:])
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox WHERE msg_key = ? AND attempts = 0", "o1"); n != 1 ||
			count(t, db, "SELECT COUNT(*) FROM txbox_outbox") != 1 {
			t.Errorf("outbox after requeuing o1: %d rows of o1, want exactly that one row", n)
		}
		// Drop o2: gone, o3 and o4 stay, the outbox unchanged.
		e.api("POST", "/api/v1/dead/drop", map[string]any{"db": "db", "box": "outbox", "ids": []int64{s.outbox[1]}}, &res, 200)
		if got := deadIDs(t, db, "txbox_outbox_dead"); res.Changed != 1 || !slices.Equal(got, s.outbox[2:]) {
			t.Errorf("after drop: changed %d, dead letters %v, want 1 and %v", res.Changed, got, s.outbox[2:])
		}
		// Drop every orders dead letter: o3 only (o4 is billing).
		e.api("POST", "/api/v1/dead/drop", map[string]any{"db": "db", "box": "outbox", "topic": "orders", "all": true}, &res, 200)
		if got := deadIDs(t, db, "txbox_outbox_dead"); res.Changed != 1 || !slices.Equal(got, s.outbox[3:]) {
			t.Errorf("after drop all orders: changed %d, dead letters %v, want 1 and %v", res.Changed, got, s.outbox[3:])
		}

		// Replay p1: in the outbox with topic, key, payload and headers; its parked key released; p2 and p3 stay.
		e.api("POST", "/api/v1/dead/replay", map[string]any{"db": "db", "box": "inbox", "ids": []int64{s.inbox[0]}}, &res, 200)
		if res.Changed != 1 || len(res.Failed) != 0 {
			t.Fatalf("replay = %+v", res)
		}
		if got := deadIDs(t, db, "txbox_inbox_dead"); !slices.Equal(got, s.inbox[1:]) {
			t.Errorf("inbox dead letters after replay = %v, want %v", got, s.inbox[1:])
		}
		var headers string
		if err := db.QueryRow(db.Rebind("SELECT headers FROM txbox_outbox WHERE msg_key = ? AND topic = ? AND payload = ?"),
			"p1", "t1", []byte("one")).Scan(&headers); err != nil || !strings.Contains(headers, `"h"`) {
			t.Errorf("replayed p1 in the outbox: headers %q, %v", headers, err)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_inbox WHERE consumer = ? AND msg_key = ?", "c1", "p1"); n != 0 {
			t.Errorf("p1's parked key still recorded after replay")
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_inbox WHERE parked = ?", true); n != 2 {
			t.Errorf("%d parked keys after replaying p1, want p2 and p3", n)
		}
		// Drop p3 (consumer c2): its key stays recorded as processed; p2 untouched.
		e.api("POST", "/api/v1/dead/drop", map[string]any{"db": "db", "box": "inbox", "consumer": "c2", "all": true}, &res, 200)
		if got := deadIDs(t, db, "txbox_inbox_dead"); res.Changed != 1 || !slices.Equal(got, s.inbox[1:2]) {
			t.Errorf("after dropping c2's: changed %d, dead letters %v, want 1 and %v", res.Changed, got, s.inbox[1:2])
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_inbox WHERE consumer = ? AND msg_key = ? AND parked = ?", "c2", "p3", false); n != 1 {
			t.Errorf("dropped p3's key recorded as processed %d times, want 1", n)
		}
		if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox"); n != 2 {
			t.Errorf("%d rows in the outbox, want o1 and p1", n)
		}

		// The wrong action for the table, neither ids nor all, both: 400, nothing changed.
		for _, c := range []struct {
			action string
			body   map[string]any
		}{
			{"requeue", map[string]any{"db": "db", "box": "inbox", "ids": []int64{s.inbox[1]}}},
			{"replay", map[string]any{"db": "db", "box": "outbox", "ids": []int64{s.outbox[3]}}},
			{"drop", map[string]any{"db": "db", "box": "outbox"}},
			{"drop", map[string]any{"db": "db", "box": "outbox", "ids": []int64{s.outbox[3]}, "all": true}},
			{"purge", map[string]any{"db": "db", "box": "outbox", "all": true}},
		} {
			e.api("POST", "/api/v1/dead/"+c.action, c.body, nil, http.StatusBadRequest)
		}
		e.api("POST", "/api/v1/dead/drop", map[string]any{"db": "nope", "box": "outbox", "all": true}, nil, http.StatusNotFound)
		if len(deadIDs(t, db, "txbox_outbox_dead")) != 1 || len(deadIDs(t, db, "txbox_inbox_dead")) != 1 {
			t.Error("a refused request changed dead letters")
		}
	})
}

// TestMutationsRefused: without the token, with a wrong one, from another site, without a session or its
// CSRF token, or in a read-only console, nothing changes.
func TestMutationsRefused(t *testing.T) {
	onTargets(t, func(t *testing.T, tg testdb.Target) {
		db := testdb.Open(t, tg)
		s := setUpDead(t, db)
		e := one(t, db, console.Config{})
		body := `{"db":"db","box":"outbox","ids":[` + strconv.FormatInt(s.outbox[0], 10) + `]}`
		jsonType := "application/json"
		for name, tc := range map[string]struct {
			hdr  map[string]string
			want int
		}{
			"no token":         {map[string]string{"Content-Type": jsonType}, 401},
			"wrong token":      {map[string]string{"Content-Type": jsonType, "Authorization": "Bearer " + token + "x"}, 401},
			"basic auth":       {map[string]string{"Content-Type": jsonType, "Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+token))}, 401},
			"foreign origin":   {map[string]string{"Content-Type": jsonType, "Authorization": "Bearer " + token, "Origin": "https://evil.example"}, 403},
			"foreign referer":  {map[string]string{"Content-Type": jsonType, "Authorization": "Bearer " + token, "Referer": "https://evil.example/x"}, 403},
			"cross-site fetch": {map[string]string{"Content-Type": jsonType, "Authorization": "Bearer " + token, "Sec-Fetch-Site": "cross-site"}, 403},
			"form encoded":     {map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Authorization": "Bearer " + token}, 400},
		} {
			if r := e.do("POST", "/api/v1/dead/requeue", body, tc.hdr); r.code != tc.want {
				t.Errorf("%s: status %d, want %d: %s", name, r.code, tc.want, r.body)
			}
		}

		// Pages: a form needs a session, its CSRF token and this site's Origin (or Referer).
		ck := e.login()
		csrf := e.csrf(ck)
		form := "db=db&box=outbox&action=requeue&id=" + strconv.FormatInt(s.outbox[0], 10)
		formType := "application/x-www-form-urlencoded"
		for name, tc := range map[string]struct {
			hdr  map[string]string
			body string
			want int
		}{
			"no session":        {map[string]string{"Content-Type": formType, "Origin": e.srv.URL}, form + "&csrf=" + csrf, 401},
			"no csrf":           {map[string]string{"Content-Type": formType, "Origin": e.srv.URL, "Cookie": ck.String()}, form, 403},
			"wrong csrf":        {map[string]string{"Content-Type": formType, "Origin": e.srv.URL, "Cookie": ck.String()}, form + "&csrf=x" + csrf, 403},
			"foreign origin":    {map[string]string{"Content-Type": formType, "Origin": "http://evil.example", "Cookie": ck.String()}, form + "&csrf=" + csrf, 403},
			"no origin/referer": {map[string]string{"Content-Type": formType, "Cookie": ck.String()}, form + "&csrf=" + csrf, 403},
			"forged cookie":     {map[string]string{"Content-Type": formType, "Origin": e.srv.URL, "Cookie": "txbox_console=" + ck.Value + "x"}, form + "&csrf=" + csrf, 401},
		} {
			if r := e.do("POST", "/dead/apply", tc.body, tc.hdr); r.code != tc.want {
				t.Errorf("page %s: status %d, want %d: %s", name, r.code, tc.want, r.body)
			}
		}
		if got := deadIDs(t, db, "txbox_outbox_dead"); !slices.Equal(got, s.outbox) || count(t, db, "SELECT COUNT(*) FROM txbox_outbox") != 0 {
			t.Fatalf("a refused request changed something: outbox dead letters %v", got)
		}
		// A wrong token at /login gets no session.
		r := e.do("POST", "/login", "token=nope&next=/dead", map[string]string{"Content-Type": formType, "Origin": e.srv.URL})
		if r.code != 401 || strings.Contains(r.hdr.Get("Set-Cookie"), "txbox_console=") {
			t.Errorf("login with a wrong token: status %d, Set-Cookie %q", r.code, r.hdr.Get("Set-Cookie"))
		}
		// The session cookie is HttpOnly and SameSite=Strict; with session, CSRF token and Origin the form works.
		if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
			t.Errorf("session cookie %+v: want HttpOnly and SameSite=Strict", ck)
		}
		r = e.do("POST", "/dead/apply", form+"&csrf="+csrf, map[string]string{"Content-Type": formType, "Origin": e.srv.URL, "Cookie": ck.String()})
		if r.code != 200 || !strings.Contains(r.body, "1 of 1 outbox dead letter(s)") {
			t.Fatalf("authorized form: status %d\n%s", r.code, r.body)
		}
		if got := deadIDs(t, db, "txbox_outbox_dead"); !slices.Equal(got, s.outbox[1:]) {
			t.Errorf("after the authorized requeue: %v, want %v", got, s.outbox[1:])
		}

		// Read-only: refused with the token, and the pages offer no action.
		ro := one(t, db, console.Config{ReadOnly: true, Token: token})
		ro.api("POST", "/api/v1/dead/drop", map[string]any{"db": "db", "box": "outbox", "all": true}, nil, http.StatusForbidden)
		rck := ro.login()
		if r := ro.do("POST", "/dead/apply", form+"&csrf="+ro.csrf(rck), map[string]string{"Content-Type": formType,
			"Origin": ro.srv.URL, "Cookie": rck.String()}); r.code != 403 {
			t.Errorf("read-only page apply: status %d", r.code)
		}
		if page := ro.do("GET", "/dead", "", map[string]string{"Cookie": rck.String()}); strings.Contains(page.body, "Requeue selected") ||
			!strings.Contains(page.body, "read-only") {
			t.Errorf("read-only dead page offers actions or hides its mode")
		}
		if got := deadIDs(t, db, "txbox_outbox_dead"); !slices.Equal(got, s.outbox[1:]) {
			t.Errorf("read-only console changed dead letters: %v", got)
		}
	})
}

// Payloads are never sent unless ShowPayloads is set, and then only with the token or a session.
func TestPayloadsHiddenByDefault(t *testing.T) {
	db := testdb.Open(t, testdb.Targets[0])
	park(t, db, "c1", inbox.Delivery{Key: "p1", Payload: []byte("card 4111-1111"), Topic: "t1"})
	var page console.DeadPage
	hidden := one(t, db, console.Config{})
	hidden.api("GET", "/api/v1/dead?db=db&box=inbox", nil, &page, 200)
	if len(page.Items) != 1 || page.Items[0].Payload != nil || page.Items[0].PayloadBytes != 14 {
		t.Errorf("without ShowPayloads: %+v", page.Items)
	}
	if r := hidden.do("GET", "/dead?db=db&box=inbox", "", map[string]string{"Cookie": hidden.login().String()}); strings.Contains(r.body, "4111") {
		t.Error("without ShowPayloads the page shows the payload")
	}
	shown := one(t, db, console.Config{ShowPayloads: true})
	if r := shown.do("GET", "/api/v1/dead?db=db&box=inbox", "", nil); strings.Contains(r.body, `"payload"`) {
		t.Errorf("ShowPayloads without the token sent the payload: %s", r.body)
	}
	shown.api("GET", "/api/v1/dead?db=db&box=inbox", nil, &page, 200)
	if len(page.Items) != 1 || string(page.Items[0].Payload) != "card 4111-1111" {
		t.Errorf("ShowPayloads with the token: %+v", page.Items)
	}
	if r := shown.do("GET", "/dead?db=db&box=inbox", "", map[string]string{"Cookie": shown.login().String()}); !strings.Contains(r.body, "card 4111-1111") {
		t.Error("ShowPayloads with a session: the page does not show the payload")
	}
}

// Mounted under a base path in a service's own mux, every link, form and cookie stays under it.
func TestBasePath(t *testing.T) {
	db := testdb.Open(t, testdb.Targets[0])
	bury(t, db, outbox.Message{Topic: "t", Key: "k"})
	c, err := console.New(console.Config{Token: token, BasePath: "/ops/txbox",
		Databases: []console.Database{{Name: "db", DB: db.DB, Dialect: db.Dialect}}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ops/txbox/", c)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "the service's own", http.StatusTeapot) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	e := &env{t: t, c: c, srv: srv}
	page := e.do("GET", "/ops/txbox/dead?db=db", "", nil)
	if page.code != 200 || !strings.Contains(page.body, `href="/ops/txbox/static/console.css"`) ||
		!strings.Contains(page.body, `action="/ops/txbox/trace"`) || strings.Contains(page.body, `href="/dead`) {
		t.Errorf("page under /ops/txbox: %d\n%s", page.code, page.body)
	}
	if r := e.do("GET", "/ops/txbox", "", nil); r.code/100 != 3 || r.hdr.Get("Location") != "/ops/txbox/" {
		t.Errorf("GET /ops/txbox: %d to %q", r.code, r.hdr.Get("Location"))
	}
	if r := e.do("GET", "/dead", "", nil); r.code != http.StatusTeapot {
		t.Errorf("the console answered outside its base path: %d", r.code)
	}
	r := e.do("POST", "/ops/txbox/login", "token="+token+"&next=/ops/txbox/dead", map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": srv.URL})
	if r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/ops/txbox/dead" || !strings.Contains(r.hdr.Get("Set-Cookie"), "Path=/ops/txbox/") {
		t.Errorf("login under /ops/txbox: %d, Location %q, Set-Cookie %q", r.code, r.hdr.Get("Location"), r.hdr.Get("Set-Cookie"))
	}
	var page2 console.DeadPage
	e.api("GET", "/ops/txbox/api/v1/dead?db=db&box=outbox", nil, &page2, 200)
	if len(page2.Items) != 1 {
		t.Errorf("API under /ops/txbox: %+v", page2)
	}
}
