package dialect

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of the txbox schema, enforced before any SQL runs so that nothing is ever truncated by the database
// (MySQL silently truncates when strict mode is off).
const (
	// MaxKeyBytes is the longest business key, in bytes of UTF-8.
	MaxKeyBytes = 512
	// MaxConsumerBytes is the longest inbox consumer name.
	MaxConsumerBytes = 128
	// MaxTopicBytes is the longest outbox topic.
	MaxTopicBytes = 255
	// MaxTagBytes is the longest outbox tag.
	MaxTagBytes = 255
	// MaxShardingKeyBytes is the longest outbox sharding key.
	MaxShardingKeyBytes = 255
)

// CheckKey validates a business key: non-empty, valid UTF-8 without NUL bytes, at most MaxKeyBytes bytes.
// Keys are compared byte for byte everywhere ("Order-1", "order-1" and "order-1 " are three keys), so CheckKey
// never trims or folds them. The error wraps ErrInvalidKey.
func CheckKey(key string) error { return checkText("key", key, MaxKeyBytes, ErrInvalidKey) }

// CheckText validates a required text field (what names it in the error): non-empty, valid UTF-8, no NUL
// bytes, at most max bytes. The error wraps base.
func CheckText(what, s string, max int, base error) error { return checkText(what, s, max, base) }

func checkText(what, s string, max int, base error) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s is empty", base, what)
	case len(s) > max:
		return fmt.Errorf("%w: %s is %d bytes, longer than the maximum of %d", base, what, len(s), max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s is not valid UTF-8", base, what)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s contains a NUL byte", base, what)
	}
	return nil
}
