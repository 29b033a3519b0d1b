package dialect

import (
	"fmt"
	"strings"
)

// MaxIdentLen is the longest identifier part txbox accepts (PostgreSQL's limit; MySQL allows 64).
const MaxIdentLen = 63

// ValidateIdent reports whether name is a table name txbox will use: one or two dot-separated parts (schema and
// table), each starting with an ASCII letter or underscore, followed by ASCII letters, digits or underscores,
// at most [MaxIdentLen] bytes. Identifiers are configurable, so they are checked before any SQL is built and
// never spliced into a statement unvalidated.
func ValidateIdent(name string) error {
	_, err := identParts(name)
	return err
}

func identParts(name string) ([]string, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: empty name", ErrInvalidIdent)
	}
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%w: %q has more than two parts", ErrInvalidIdent, name)
	}
	for _, p := range parts {
		if err := checkIdentPart(p); err != nil {
			return nil, fmt.Errorf("%w: %q: %s", ErrInvalidIdent, name, err)
		}
	}
	return parts, nil
}

func checkIdentPart(p string) error {
	if p == "" {
		return fmt.Errorf("empty part")
	}
	if len(p) > MaxIdentLen {
		return fmt.Errorf("part is %d bytes, longer than %d", len(p), MaxIdentLen)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Errorf("character %q at %d (want ASCII letters, digits and _, not starting with a digit)", c, i)
		}
	}
	return nil
}

func quoteIdent(name string, q byte) (string, error) {
	parts, err := identParts(name)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteByte(q)
		b.WriteString(p)
		b.WriteByte(q)
	}
	return b.String(), nil
}
