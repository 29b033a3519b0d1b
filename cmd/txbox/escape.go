package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Topics, keys, consumer names and error texts come from producers and brokers and may hold anything a
// database column takes, escape sequences included ("\x1b]0;PWNED\a\x1b[2J" retitles and clears a terminal).
// Nothing the CLI prints passes a control character through: table cells are shown Go-quoted when they hold one
// (or bytes that are not UTF-8), JSON escapes the ones encoding/json leaves raw, and error texts are escaped line
// by line.

// cell returns s for a table cell: as it is when every character is printable, else Go-quoted ("\x1b[2J"), so
// that the quoting itself says the value was escaped.
func cell(s string) string {
	if printable(s) {
		return s
	}
	return strconv.QuoteToGraphic(s)
}

// printable reports whether s is valid UTF-8 made of graphic characters and spaces only: no C0 or C1 control
// characters, no DEL, no format characters (bidirectional overrides among them).
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || (!unicode.IsGraphic(r) && r != ' ') {
			return false
		}
	}
	return true
}

// escapeLines escapes every control character of s except the line breaks between lines (an error joined from
// several keeps one per line) and tabs.
func escapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if !printable(strings.ReplaceAll(l, "\t", " ")) {
			q := strconv.QuoteToGraphic(l)
			lines[i] = q[1 : len(q)-1]
		}
	}
	return strings.Join(lines, "\n")
}

// jsonWriter passes JSON through, escaping the characters encoding/json leaves raw in strings: DEL and the C1
// controls U+0080-U+009F (some terminals act on them). Outside strings, JSON is ASCII without them, so the bytes
// can be replaced wherever they are.
type jsonWriter struct{ w io.Writer }

func (j jsonWriter) Write(p []byte) (int, error) {
	var b bytes.Buffer
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == 0x7f:
			b.WriteString(`\u007f`)
		case c == 0xc2 && i+1 < len(p) && p[i+1] >= 0x80 && p[i+1] <= 0x9f: // U+0080..U+009F in UTF-8
			fmt.Fprintf(&b, `\u%04x`, p[i+1])
			i++
		default:
			b.WriteByte(c)
		}
	}
	_, err := j.w.Write(b.Bytes())
	return len(p), err
}
