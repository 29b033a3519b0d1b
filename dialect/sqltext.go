package dialect

import "strings"

// writeList writes quoted, comma-separated identifiers (already validated).
func writeList(b *strings.Builder, names []string, open, close string) {
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(open)
		b.WriteString(n)
		b.WriteString(close)
	}
}

// writeValueRows writes rows parenthesised groups of cols placeholders; ph(n) renders the n-th (1-based).
func writeValueRows(b *strings.Builder, rows, cols int, ph func(n int) string) {
	n := 0
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				b.WriteString(", ")
			}
			n++
			b.WriteString(ph(n))
		}
		b.WriteByte(')')
	}
}
