package console_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// Keys, topics, consumers and error texts are data: markup and terminal escapes in them must reach a reader
// as text.
const (
	hostileKey      = "o-1/<script>alert(1)</script>\x1b[31mred\x1b]0;title\a\u202eevil"
	hostileTopic    = "<b>topic</b>\x1b[2J"
	hostileConsumer = `<img src=x onerror=alert(1)>`
)

// TestHostileTextRendersInert: every page that shows the key, topic or consumer escapes markup (html/template)
// and writes control characters and bidi overrides as visible escapes; the JSON API escapes them as JSON.
func TestHostileTextRendersInert(t *testing.T) {
	onTargets(t, func(t *testing.T, tg testdb.Target) {
		db := testdb.Open(t, tg)
		bury(t, db, outbox.Message{Topic: hostileTopic, Key: hostileKey})
		park(t, db, hostileConsumer, inbox.Delivery{Key: hostileKey, Topic: hostileTopic, Payload: []byte("<script>alert(2)</script>\x1b[0m")})
		e := one(t, db, console.Config{ShowPayloads: true})
		ck := e.login()
		q := url.QueryEscape
		for _, path := range []string{
			"/",
			"/trace?key=" + q("o-1"),
			"/dead?db=db&box=outbox",
			"/dead?db=db&box=inbox",
			"/keys?db=db&consumer=" + q(hostileConsumer),
		} {
			r := e.do("GET", path, "", map[string]string{"Cookie": ck.String()})
			if r.code != 200 {
				t.Fatalf("GET %s: status %d\n%s", path, r.code, r.body)
			}
			for _, raw := range []string{"<script>alert", "<b>topic", "<img src=x", "\x1b", "\a", "\u202e"} {
				if strings.Contains(r.body, raw) {
					t.Errorf("GET %s: the page holds %q raw", path, raw)
				}
			}
			if !strings.Contains(r.body, `\x1b`) && path != "/keys?db=db&consumer="+q(hostileConsumer) {
				t.Errorf("GET %s: escape sequences not shown as \\x1b", path)
			}
		}
		trace := e.do("GET", "/trace?key="+q("o-1"), "", nil).body
		for _, want := range []string{`&lt;script&gt;alert(1)&lt;/script&gt;\x1b[31mred\x1b]0;title\a\u202eevil`,
			`&lt;b&gt;topic&lt;/b&gt;\x1b[2J`, `&lt;img src=x onerror=alert(1)&gt;`} {
			if !strings.Contains(trace, want) {
				t.Errorf("trace page lacks %q", want)
			}
		}
		if dead := e.do("GET", "/dead?db=db&box=inbox", "", map[string]string{"Cookie": ck.String()}).body; !strings.Contains(dead,
			`&lt;script&gt;alert(2)&lt;/script&gt;\x1b[0m`) {
			t.Error("the inbox dead-letter page does not show the payload escaped")
		}

		// JSON keeps the bytes, escaped the JSON way, and decodes back to the exact key.
		r := e.do("GET", "/api/v1/trace?key="+q("o-1"), "", nil)
		if strings.ContainsAny(r.body, "\x1b\a<>") || !strings.Contains(r.body, `\u001b`) ||
			r.hdr.Get("Content-Type") != "application/json; charset=utf-8" || r.hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("JSON trace not escaped (or not served as JSON):\n%s", r.body)
		}
		var tr console.Trace
		if err := json.Unmarshal([]byte(r.body), &tr); err != nil || len(tr.Events) == 0 || tr.Events[0].Key != hostileKey {
			t.Errorf("decoded trace = %+v, %v; want the exact key back", tr.Events, err)
		}
		if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("Content-Security-Policy = %q", csp)
		}
	})
}
