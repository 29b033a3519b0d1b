package rocketmq

import "errors"

// Errors returned (wrapped) by this package; match them with errors.Is.
var (
	// ErrInvalidConfig is returned by New for a Config it cannot use; the message names the field.
	ErrInvalidConfig = errors.New("inbox/rocketmq: invalid config")
	// ErrStart is returned by New when the push consumer does not start, most often because the topic has no
	// route yet: create topics before starting consumers (the client cannot be restarted).
	ErrStart = errors.New("inbox/rocketmq: consumer did not start")
	// ErrUnusable is the error recorded with a message parked because it cannot be processed under its own
	// business key: it carries none (neither the key property nor, unless RequireKeyProperty, KEYS), its key or headers
	// are not valid for the inbox, or its key was processed before with a different payload.
	ErrUnusable = errors.New("inbox/rocketmq: message unusable")
	// ErrShutdown is returned by Shutdown when in-flight handlers did not finish before its ctx ended; their
	// transactions were cancelled (rolled back) and the messages will be delivered again.
	ErrShutdown = errors.New("inbox/rocketmq: shutdown cut handlers short")
)
