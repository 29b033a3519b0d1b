package console

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// testConsole is a Console with only what the auth helpers read: token, session lifetime and base path.
func testConsole(cfg Config) *Console {
	if cfg.Token == "" {
		cfg.Token = "0123456789abcdef0123"
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	return &Console{cfg: cfg}
}

func withCookie(v string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: v})
	return r
}

func TestSessionsExpireAndCannotBeForged(t *testing.T) {
	c := testConsole(Config{SessionTTL: time.Hour})
	t0 := time.Unix(1_800_000_000, 0)
	s := c.newSession(t0)
	if got := c.session(withCookie(s), t0.Add(59*time.Minute)); got != s {
		t.Fatalf("a fresh session is refused")
	}
	if got := c.session(withCookie(s), t0.Add(time.Hour)); got != "" {
		t.Errorf("an expired session is accepted")
	}
	body, sig, _ := cut(s)
	for name, v := range map[string]string{
		"bad signature":  body + "." + sig[:len(sig)-2] + "AA",
		"no signature":   body,
		"empty":          "",
		"swapped parts":  sig + "." + body,
		"other token's":  testConsole(Config{Token: "another-token-0123456789"}).newSession(t0),
		"extended":       extend(t, c, s),
		"garbage base64": "!!!." + sig,
	} {
		if got := c.session(withCookie(v), t0); got != "" {
			t.Errorf("%s: session accepted", name)
		}
	}
	// CSRF tokens belong to one session.
	other := c.newSession(t0)
	if !c.csrfOK(s, c.csrfToken(s)) || c.csrfOK(s, c.csrfToken(other)) || c.csrfOK("", c.csrfToken("")) || c.csrfOK(s, "") {
		t.Error("CSRF tokens are not bound to their session")
	}
	if c.tokenOK("") || c.tokenOK(c.cfg.Token+" ") || !c.tokenOK(c.cfg.Token) {
		t.Error("tokenOK")
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '.' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// extend re-signs nothing: it changes the expiry bytes of a session and keeps the old signature.
func extend(t *testing.T, c *Console, s string) string {
	t.Helper()
	later := c.newSession(time.Unix(1_900_000_000, 0))
	lb, _, _ := cut(later)
	_, sig, _ := cut(s)
	return lb + "." + sig
}

func TestLocalNextRefusesOtherSites(t *testing.T) {
	c := testConsole(Config{BasePath: "/txbox"})
	for next, want := range map[string]string{
		"/txbox/dead?box=inbox":   "/txbox/dead?box=inbox",
		"/txbox/":                 "/txbox/",
		"":                        "/txbox/",
		"https://evil.example/":   "/txbox/",
		"//evil.example/txbox/":   "/txbox/",
		"/\\evil.example":         "/txbox/",
		"/other/path":             "/txbox/",
		"/txbox/x\r\nLocation: /": "/txbox/",
		"javascript:alert(1)":     "/txbox/",
	} {
		if got := c.localNext(next); got != want {
			t.Errorf("localNext(%q) = %q, want %q", next, got, want)
		}
	}
}

func TestSameOrigin(t *testing.T) {
	req := func(h map[string]string) *http.Request {
		r := httptest.NewRequest("POST", "http://console.local:7070/dead/apply", nil)
		for k, v := range h {
			r.Header.Set(k, v)
		}
		return r
	}
	for name, tc := range map[string]struct {
		h       map[string]string
		require bool
		ok      bool
	}{
		"same origin":        {map[string]string{"Origin": "http://console.local:7070"}, true, true},
		"same referer":       {map[string]string{"Referer": "http://console.local:7070/dead"}, true, true},
		"other port":         {map[string]string{"Origin": "http://console.local:8080"}, true, false},
		"null origin":        {map[string]string{"Origin": "null"}, true, false},
		"other host referer": {map[string]string{"Referer": "http://evil.example/console.local:7070"}, true, false},
		"none, page":         {nil, true, false},
		"none, api":          {nil, false, true},
		"cross-site fetch":   {map[string]string{"Origin": "http://console.local:7070", "Sec-Fetch-Site": "cross-site"}, false, false},
		"same-origin fetch":  {map[string]string{"Origin": "http://console.local:7070", "Sec-Fetch-Site": "same-origin"}, true, true},
	} {
		if err := sameOrigin(req(tc.h), tc.require); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", name, err, tc.ok)
		}
	}
}
