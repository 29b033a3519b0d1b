package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// ServeHTTP serves the pages and the JSON API (see the package documentation) under Config.BasePath.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Pages load nothing but their own stylesheet and script; nothing may frame them; responses name
	// business data and are never cached.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "+
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.handler.ServeHTTP(w, r)
}

func (c *Console) routes() http.Handler {
	mux := http.NewServeMux()
	b := c.cfg.BasePath
	handle := func(pattern string, f http.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		mux.HandleFunc(method+" "+b+path, f)
	}
	handle("GET /api/v1/overview", c.apiOverview)
	handle("GET /api/v1/trace", c.apiTrace)
	handle("GET /api/v1/dead", c.apiDead)
	handle("GET /api/v1/consumers", c.apiConsumers)
	handle("GET /api/v1/keys", c.apiKeys)
	handle("POST /api/v1/dead/{action}", c.apiApply)

	handle("GET /{$}", c.pageOverview)
	handle("GET /trace", c.pageTrace)
	handle("GET /dead", c.pageDead)
	handle("POST /dead/confirm", c.pageConfirm)
	handle("POST /dead/apply", c.pageApply)
	handle("GET /keys", c.pageKeys)
	handle("GET /login", c.pageLogin)
	handle("POST /login", c.pageLoginPost)
	handle("POST /logout", c.pageLogout)
	handle("GET /static/{file}", c.static)
	if b != "" {
		mux.Handle("GET "+b, http.RedirectHandler(b+"/", http.StatusMovedPermanently))
	}
	return mux
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalidRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden), errors.Is(err, ErrReadOnly):
		return http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func (c *Console) logError(r *http.Request, code int, err error) {
	if code >= 500 {
		c.cfg.Logger.WarnContext(r.Context(), "console: request failed", "method", r.Method, "path", r.URL.Path,
			"status", code, "error", err)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (c *Console) apiError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	c.logError(r, code, err)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="txbox console"`)
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// query reads a request's filter parameters.
type query struct{ url.Values }

func (q query) int64(name string) (int64, error) {
	s := q.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, errInvalid(name + " must be a non-negative integer")
	}
	return n, nil
}

func (q query) bool(name string) bool {
	switch strings.ToLower(q.Get(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func errInvalid(msg string) error { return fmt.Errorf("%w: %s", ErrInvalidRequest, msg) }

func (q query) deadFilter() (DeadFilter, error) {
	after, err := q.int64("after")
	if err != nil {
		return DeadFilter{}, err
	}
	limit, err := q.int64("limit")
	if err != nil {
		return DeadFilter{}, err
	}
	return DeadFilter{Box: Box(q.Get("box")), Database: q.Get("db"), Consumer: q.Get("consumer"), Topic: q.Get("topic"),
		Key: q.Get("key"), Exact: q.bool("exact"), AfterID: after, Limit: int(min(limit, MaxPageSize+1))}, nil
}

func (q query) keysFilter() (KeysFilter, error) {
	limit, err := q.int64("limit")
	if err != nil {
		return KeysFilter{}, err
	}
	return KeysFilter{Database: q.Get("db"), Consumer: q.Get("consumer"), Key: q.Get("key"), Exact: q.bool("exact"),
		After: q.Get("after"), Limit: int(min(limit, MaxPageSize+1))}, nil
}

// mayReadPayloads reports whether r may see payloads: Config.ShowPayloads and the token or a session.
func (c *Console) mayReadPayloads(r *http.Request) bool {
	return c.cfg.ShowPayloads && (c.bearer(r) || c.session(r, now()) != "")
}

func hidePayloads(items []DeadLetter) {
	for i := range items {
		items[i].Payload = nil
	}
}
