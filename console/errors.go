package console

import "errors"

// Errors returned (wrapped) by this package. The handler maps them to HTTP status codes: ErrInvalidRequest to
// 400, ErrUnauthorized to 401, ErrForbidden and ErrReadOnly to 403, ErrNotFound to 404.
var (
	// ErrInvalidConfig is returned by New for a Config it cannot use; the message names the field.
	ErrInvalidConfig = errors.New("console: invalid config")
	// ErrInvalidRequest is returned for a request the console cannot run as given: an empty key, an unknown
	// action, a page size out of range. The message names what is wrong.
	ErrInvalidRequest = errors.New("console: invalid request")
	// ErrNotFound is returned for a database name the console does not know, and by the dead-letter operations
	// when an id names no dead letter (nothing is changed then, not even for the ids that exist).
	ErrNotFound = errors.New("console: not found")
	// ErrReadOnly is returned for every operation that would change a database when Config.ReadOnly is set.
	ErrReadOnly = errors.New("console: read-only")
	// ErrUnauthorized is returned by the handler for a mutating request without a valid token or session.
	ErrUnauthorized = errors.New("console: unauthorized")
	// ErrForbidden is returned by the handler for a mutating request that comes from another site: a foreign
	// Origin or Referer, neither of them, or a form without the session's CSRF token.
	ErrForbidden = errors.New("console: forbidden")
)
