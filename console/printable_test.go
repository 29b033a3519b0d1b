package console

import "testing"

func TestPrintable(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"o-1/created", "o-1/created"},
		{"<script>alert(1)</script>", "<script>alert(1)</script>"}, // markup is the page's escaping's job
		{"a\x1b[31mred\x1b[0m", `a\x1b[31mred\x1b[0m`},
		{"title\x1b]0;pwned\a", `title\x1b]0;pwned\a`},
		{"line\r\nnext\ttab", `line\r\nnext\ttab`},
		{"del\x7f c1\u0085", `del\x7f c1\u0085`},
		{"abc\u202edcba", `abc\u202edcba`}, // right-to-left override
		{"iso\u2066x\u2069", `iso\u2066x\u2069`},
		{`back\slash`, `back\\slash`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"zahlung für 12345 ✓", "zahlung für 12345 ✓"},
		{"\ufffd", "\ufffd"},
	} {
		if got := Printable(c.in); got != c.want {
			t.Errorf("Printable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
