package console

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
)

func (c *Console) apiOverview(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, c.Overview(r.Context()))
}

func (c *Console) apiTrace(w http.ResponseWriter, r *http.Request) {
	q := query{r.URL.Query()}
	tr, err := c.Trace(r.Context(), q.Get("key"), q.bool("exact"))
	if err != nil {
		c.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tr)
}

func (c *Console) apiDead(w http.ResponseWriter, r *http.Request) {
	f, err := query{r.URL.Query()}.deadFilter()
	if err != nil {
		c.apiError(w, r, err)
		return
	}
	page, err := c.DeadLetters(r.Context(), f)
	if err != nil {
		c.apiError(w, r, err)
		return
	}
	if !c.mayReadPayloads(r) {
		hidePayloads(page.Items)
	}
	writeJSON(w, http.StatusOK, page)
}

func (c *Console) apiConsumers(w http.ResponseWriter, r *http.Request) {
	cs, err := c.Consumers(r.Context(), r.URL.Query().Get("db"))
	if err != nil {
		c.apiError(w, r, err)
		return
	}
	if cs == nil {
		cs = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"consumers": cs})
}

func (c *Console) apiKeys(w http.ResponseWriter, r *http.Request) {
	f, err := query{r.URL.Query()}.keysFilter()
	if err != nil {
		c.apiError(w, r, err)
		return
	}
	page, err := c.Keys(r.Context(), f)
	if err != nil {
		c.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// maxBody bounds a request body: a selection of MaxBulk ids fits with room to spare.
const maxBody = 1 << 20

// apiApply runs POST /api/v1/dead/{action}. Checks, in order: read-only, same origin, the bearer token, a
// JSON body; each refusal changes nothing.
func (c *Console) apiApply(w http.ResponseWriter, r *http.Request) {
	action := Action(r.PathValue("action"))
	if c.cfg.ReadOnly {
		c.apiError(w, r, fmt.Errorf("%w: %s refused", ErrReadOnly, Printable(string(action))))
		return
	}
	if err := sameOrigin(r, false); err != nil {
		c.apiError(w, r, err)
		return
	}
	if !c.bearer(r) {
		c.apiError(w, r, fmt.Errorf("%w: send the console's token as \"Authorization: Bearer <token>\"", ErrUnauthorized))
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		c.apiError(w, r, errInvalid("the body must be JSON (Content-Type: application/json)"))
		return
	}
	var sel Selection
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sel); err != nil {
		c.apiError(w, r, errInvalid("body: "+err.Error()))
		return
	}
	res, err := c.Apply(r.Context(), action, sel)
	if err != nil {
		c.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
