package console

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Printable returns s with every character that a terminal or a page could act on written as a Go escape:
// C0 and C1 control characters and DEL (ANSI escape sequences, carriage returns, bells), the Unicode
// bidirectional controls that can reorder what a reader sees (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
// U+061C), and bytes that are not UTF-8. A backslash is doubled, so the result reads back unambiguously.
// Everything else, markup included, is left to the output's own escaping (html/template on pages, JSON in the
// API). Keys, topics, consumers and error texts come from the database and may hold any of these: txbox trace
// and the console's pages pass each of them through Printable before showing it.
func Printable(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case r == '\\':
			b.WriteString(`\\`)
		case escaped(r):
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func escaped(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || unicode.Is(unicode.Bidi_Control, r)
}

func needsEscape(s string) bool {
	if !utf8.ValidString(s) {
		return true
	}
	for _, r := range s {
		if r == '\\' || escaped(r) {
			return true
		}
	}
	return false
}
