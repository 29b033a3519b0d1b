package console

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/console.css static/console.js
var staticFS embed.FS

var now = time.Now

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"p": Printable,
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format(timeLayout)
	},
	"age": func(d time.Duration) string {
		if d <= 0 {
			return "—"
		}
		return d.Round(time.Millisecond).String()
	},
	// delta is the time from the first event of a trace to t.
	"delta": func(first, t time.Time) string {
		d := t.Sub(first)
		if d < 0 {
			return "−" + (-d).Round(time.Microsecond).String()
		}
		return "+" + d.Round(time.Microsecond).String()
	},
	"text":  func(b []byte) string { return Printable(string(b)) },
	"title": func(s string) string { return strings.ToUpper(s[:1]) + s[1:] },
}).ParseFS(templateFS, "templates/*.html"))

// page is what every template gets.
type page struct {
	Title    string
	Base     string
	ReadOnly bool
	LoggedIn bool
	CanLogin bool
	CSRF     string
	DBs      []string
	Nav      string // the current section, for the menu
	Data     any
}

func (c *Console) newPage(r *http.Request, title, nav string, data any) *page {
	s := c.session(r, now())
	p := &page{Title: title, Base: c.cfg.BasePath, ReadOnly: c.cfg.ReadOnly, LoggedIn: s != "",
		CanLogin: c.cfg.Token != "", DBs: c.Databases(), Nav: nav, Data: data}
	if s != "" {
		p.CSRF = c.csrfToken(s)
	}
	return p
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, code int, name string, p *page) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, p); err != nil {
		c.logError(r, http.StatusInternalServerError, err)
		http.Error(w, "console: render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

func (c *Console) pageError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	c.logError(r, code, err)
	c.render(w, r, code, "error.html", c.newPage(r, http.StatusText(code), "", err.Error()))
}

// link builds a URL of the console from a path and query pairs, leaving out empty values.
func (c *Console) link(p string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	u := c.cfg.BasePath + p
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u
}

func (c *Console) pageOverview(w http.ResponseWriter, r *http.Request) {
	o := c.Overview(r.Context())
	type row struct {
		DatabaseOverview
		DeadLink, KeysLink  string
		InboxDeadLink       string
		TopicLinks          map[string]string
		ConsumerKeys, Deads map[string]string
	}
	var rows []row
	for _, d := range o.Databases {
		x := row{DatabaseOverview: d, DeadLink: c.link("/dead", "db", d.Name, "box", "outbox"),
			InboxDeadLink: c.link("/dead", "db", d.Name, "box", "inbox"),
			KeysLink:      c.link("/keys", "db", d.Name), TopicLinks: map[string]string{}, ConsumerKeys: map[string]string{},
			Deads: map[string]string{}}
		for _, t := range d.Topics {
			x.TopicLinks[t.Topic] = c.link("/dead", "db", d.Name, "box", "outbox", "topic", t.Topic)
		}
		for _, cs := range d.Consumers {
			x.ConsumerKeys[cs.Consumer] = c.link("/keys", "db", d.Name, "consumer", cs.Consumer)
			x.Deads[cs.Consumer] = c.link("/dead", "db", d.Name, "box", "inbox", "consumer", cs.Consumer)
		}
		rows = append(rows, x)
	}
	c.render(w, r, http.StatusOK, "overview.html", c.newPage(r, "Overview", "overview", map[string]any{
		"At": o.At, "Databases": rows}))
}

func (c *Console) pageTrace(w http.ResponseWriter, r *http.Request) {
	q := query{r.URL.Query()}
	data := map[string]any{"Key": q.Get("key"), "Exact": q.bool("exact")}
	if q.Get("key") == "" {
		c.render(w, r, http.StatusOK, "trace.html", c.newPage(r, "Trace", "trace", data))
		return
	}
	tr, err := c.Trace(r.Context(), q.Get("key"), q.bool("exact"))
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	data["Trace"] = tr
	if len(tr.Events) > 0 {
		data["First"] = tr.Events[0].At
	}
	c.render(w, r, http.StatusOK, "trace.html", c.newPage(r, "Trace "+Printable(tr.Key), "trace", data))
}

func (c *Console) pageDead(w http.ResponseWriter, r *http.Request) {
	q := query{r.URL.Query()}
	f, err := q.deadFilter()
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	if f.Database == "" {
		f.Database = c.dbs[0].Name
	}
	if f.Box == "" {
		f.Box = OutboxBox
	}
	page, err := c.DeadLetters(r.Context(), f)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	payloads := c.mayReadPayloads(r)
	if !payloads {
		hidePayloads(page.Items)
	}
	var next string
	if page.Next > 0 {
		next = c.link("/dead", "db", f.Database, "box", string(f.Box), "consumer", f.Consumer, "topic", f.Topic,
			"key", f.Key, "exact", boolParam(f.Exact), "after", strconv.FormatInt(page.Next, 10))
	}
	title := map[Box]string{OutboxBox: "Outbox dead letters", InboxBox: "Inbox dead letters"}[f.Box]
	c.render(w, r, http.StatusOK, "dead.html", c.newPage(r, title, "dead", map[string]any{
		"Filter": page.Filter, "Items": page.Items, "Next": next, "Payloads": payloads,
		"Login": c.link("/login", "next", r.URL.RequestURI()),
	}))
}

func boolParam(b bool) string {
	if b {
		return "1"
	}
	return ""
}

// formSelection reads the selection and action a dead-letter form posts.
func formSelection(r *http.Request) (Action, Selection, error) {
	q := query{r.PostForm}
	f, err := q.deadFilter()
	if err != nil {
		return "", Selection{}, err
	}
	sel := Selection{DeadFilter: f, All: q.Get("scope") == "all"}
	if !sel.All {
		for _, s := range r.PostForm["id"] {
			id, err := strconv.ParseInt(s, 10, 64)
			if err != nil || id <= 0 {
				return "", Selection{}, errInvalid("id must be a positive integer")
			}
			sel.IDs = append(sel.IDs, id)
		}
		if len(sel.IDs) == 0 {
			return "", Selection{}, errInvalid("select at least one dead letter (or choose every match)")
		}
	}
	return Action(q.Get("action")), sel, nil
}

// checkForm authorizes a state-changing form: this site, a session, its CSRF token.
func (c *Console) checkForm(r *http.Request) error {
	if err := sameOrigin(r, true); err != nil {
		return err
	}
	if err := r.ParseForm(); err != nil {
		return errInvalid("form: " + err.Error())
	}
	s := c.session(r, now())
	if s == "" {
		return fmt.Errorf("%w: log in with the console's token first", ErrUnauthorized)
	}
	if !c.csrfOK(s, r.PostForm.Get("csrf")) {
		return fmt.Errorf("%w: the form's CSRF token does not match the session; reload the page", ErrForbidden)
	}
	return nil
}

// applyForm runs a dead-letter form (POST /dead/confirm as a dry run, POST /dead/apply for real) after the
// checks every change goes through: not read-only, this site, a session and its CSRF token.
func (c *Console) applyForm(w http.ResponseWriter, r *http.Request, dryRun bool) (*Result, Selection, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if c.cfg.ReadOnly {
		return nil, Selection{}, fmt.Errorf("%w: this console changes nothing", ErrReadOnly)
	}
	if err := c.checkForm(r); err != nil {
		return nil, Selection{}, err
	}
	action, sel, err := formSelection(r)
	if err != nil {
		return nil, Selection{}, err
	}
	sel.DryRun = dryRun
	res, err := c.Apply(r.Context(), action, sel)
	return res, sel, err
}

func (c *Console) pageConfirm(w http.ResponseWriter, r *http.Request) {
	res, sel, err := c.applyForm(w, r, true)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "confirm.html", c.newPage(r, "Confirm", "dead", map[string]any{
		"Result": res, "Filter": sel.DeadFilter, "All": sel.All, "Back": c.deadLink(sel.DeadFilter)}))
}

func (c *Console) pageApply(w http.ResponseWriter, r *http.Request) {
	res, sel, err := c.applyForm(w, r, false)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "result.html", c.newPage(r, "Done", "dead", map[string]any{
		"Result": res, "Back": c.deadLink(sel.DeadFilter)}))
}

func (c *Console) deadLink(f DeadFilter) string {
	return c.link("/dead", "db", f.Database, "box", string(f.Box), "consumer", f.Consumer, "topic", f.Topic,
		"key", f.Key, "exact", boolParam(f.Exact))
}

func (c *Console) pageKeys(w http.ResponseWriter, r *http.Request) {
	f, err := query{r.URL.Query()}.keysFilter()
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	if f.Database == "" {
		f.Database = c.dbs[0].Name
	}
	consumers, err := c.Consumers(r.Context(), f.Database)
	if err != nil {
		c.pageError(w, r, err)
		return
	}
	if f.Consumer == "" && len(consumers) > 0 {
		f.Consumer = consumers[0]
	}
	data := map[string]any{"Filter": f, "Consumers": consumers}
	if f.Consumer != "" {
		page, err := c.Keys(r.Context(), f)
		if err != nil {
			c.pageError(w, r, err)
			return
		}
		data["Items"] = page.Items
		if page.Next != "" {
			data["Next"] = c.link("/keys", "db", f.Database, "consumer", f.Consumer, "key", f.Key, "exact",
				boolParam(f.Exact), "after", page.Next)
		}
		traces := map[string]string{}
		for _, k := range page.Items {
			traces[k.Key] = c.link("/trace", "key", k.Key, "exact", "1")
		}
		data["Traces"] = traces
	}
	c.render(w, r, http.StatusOK, "keys.html", c.newPage(r, "Inbox keys", "keys", data))
}

// localNext returns next when it is a path of this console, else the overview: no open redirect.
func (c *Console) localNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, c.cfg.BasePath+"/") ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return c.cfg.BasePath + "/"
	}
	return u.RequestURI()
}

func (c *Console) pageLogin(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login.html", c.newPage(r, "Log in", "login", map[string]any{
		"Next": c.localNext(r.URL.Query().Get("next"))}))
}

func (c *Console) pageLoginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := sameOrigin(r, true); err != nil {
		c.pageError(w, r, err)
		return
	}
	if err := r.ParseForm(); err != nil {
		c.pageError(w, r, errInvalid("form: "+err.Error()))
		return
	}
	next := c.localNext(r.PostForm.Get("next"))
	if !c.tokenOK(r.PostForm.Get("token")) {
		c.cfg.Logger.WarnContext(r.Context(), "console: login refused", "remote", r.RemoteAddr)
		c.render(w, r, http.StatusUnauthorized, "login.html", c.newPage(r, "Log in", "login", map[string]any{
			"Next": next, "Failed": true}))
		return
	}
	c.setSession(w, r, c.newSession(now()))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) pageLogout(w http.ResponseWriter, r *http.Request) {
	if err := c.checkForm(r); err != nil && !errors.Is(err, ErrUnauthorized) {
		c.pageError(w, r, err)
		return
	}
	c.setSession(w, r, "")
	http.Redirect(w, r, c.cfg.BasePath+"/", http.StatusSeeOther)
}

func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := "text/css; charset=utf-8"
	if strings.HasSuffix(name, ".js") {
		ct = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(b)
}
