package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// How mutating requests are authorized:
//
//   - API: "Authorization: Bearer <token>". A browser cannot add that header to a cross-site request, so it is
//     CSRF-safe by construction; an Origin or Referer header, when present, must still be this site's.
//   - Pages: the token is posted once to /login and exchanged for a session cookie (HttpOnly, SameSite=Strict,
//     Secure on TLS, Path = BasePath). The cookie is stateless: an expiry and a nonce, signed with an HMAC keyed
//     by the token, so sessions survive restarts and several replicas, and changing the token ends them all.
//     Every form carries a CSRF token derived from the session (HMAC of the cookie), and every POST must come
//     from this site: its Origin, or without one its Referer, must name the request's host, and
//     Sec-Fetch-Site must not say cross-site.

const sessionCookie = "txbox_console"

// authKey is the HMAC key of sessions and CSRF tokens: derived from the token, so that the token itself never
// signs anything.
func (c *Console) authKey() []byte {
	m := hmac.New(sha256.New, []byte(c.cfg.Token))
	m.Write([]byte("txbox console session key v1"))
	return m.Sum(nil)
}

func (c *Console) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, c.authKey())
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// tokenOK compares a presented token with the configured one in constant time.
func (c *Console) tokenOK(presented string) bool {
	if c.cfg.Token == "" || presented == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(c.cfg.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// bearer reports whether r carries the token in its Authorization header.
func (c *Console) bearer(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && c.tokenOK(strings.TrimSpace(tok))
}

// newSession returns a signed session cookie value valid until now + SessionTTL.
func (c *Console) newSession(now time.Time) string {
	var body [24]byte
	binary.BigEndian.PutUint64(body[:8], uint64(now.Add(c.cfg.SessionTTL).Unix()))
	_, _ = rand.Read(body[8:])
	v := base64.RawURLEncoding.EncodeToString(body[:])
	return v + "." + base64.RawURLEncoding.EncodeToString(c.mac("session", v))
}

// session returns r's session cookie value when it is signed by this token and not expired, or "".
func (c *Console) session(r *http.Request, now time.Time) string {
	if c.cfg.Token == "" {
		return ""
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	v, sig, ok := strings.Cut(ck.Value, ".")
	if !ok {
		return ""
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, c.mac("session", v)) {
		return ""
	}
	body, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(body) != 24 || now.Unix() >= int64(binary.BigEndian.Uint64(body[:8])) {
		return ""
	}
	return ck.Value
}

// csrfToken is the token the forms of a session carry.
func (c *Console) csrfToken(session string) string {
	return base64.RawURLEncoding.EncodeToString(c.mac("csrf", session))
}

func (c *Console) csrfOK(session, presented string) bool {
	return session != "" && presented != "" && hmac.Equal([]byte(presented), []byte(c.csrfToken(session)))
}

// sameOrigin checks that a state-changing request comes from a page of this site. A browser sends Origin on
// every POST (Referer as a fallback for old ones) and Sec-Fetch-Site where it can; requireHeader refuses
// requests with neither Origin nor Referer (pages), while API clients such as curl send neither and are
// accepted on their token alone.
func sameOrigin(r *http.Request, requireHeader bool) error {
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		return fmt.Errorf("%w: cross-site request (Sec-Fetch-Site: %s)", ErrForbidden, s)
	}
	from := r.Header.Get("Origin")
	what := "Origin"
	if from == "" {
		from, what = r.Header.Get("Referer"), "Referer"
	}
	if from == "" {
		if requireHeader {
			return fmt.Errorf("%w: no Origin or Referer header: refusing a change that may come from another site", ErrForbidden)
		}
		return nil
	}
	u, err := url.Parse(from)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return fmt.Errorf("%w: %s %q is not this site (%s)", ErrForbidden, what, Printable(from), Printable(r.Host))
	}
	return nil
}

// setSession sets (value != "") or clears the session cookie.
func (c *Console) setSession(w http.ResponseWriter, r *http.Request, value string) {
	ck := &http.Cookie{Name: sessionCookie, Value: value, Path: c.cfg.BasePath + "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if value == "" {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(c.cfg.SessionTTL / time.Second)
	}
	http.SetCookie(w, ck)
}
