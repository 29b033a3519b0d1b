package inbox

import (
	"fmt"
	"strings"
)

// Key builds a business key from parts joined with '/', escaping '%' as "%25" and '/' as "%2F" inside each
// part (percent-encoding, nothing else changes), so that different part lists never give the same key:
//
//	Key("12345", "payment")    == "12345/payment"
//	Key("a/b", "c")            == "a%2Fb/c"
//	Key("a", "b/c")            == "a/b%2Fc"
//
// Key does not validate: Process rejects an empty or over-long result (see dialect.CheckKey). SplitKey
// reverses it.
func Key(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('/')
		}
		for j := 0; j < len(p); j++ {
			switch c := p[j]; c {
			case '%':
				b.WriteString("%25")
			case '/':
				b.WriteString("%2F")
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// SplitKey returns the parts a key was built from with Key. It fails on a '%' that is not followed by "25" or
// "2F" (a key Key cannot produce).
func SplitKey(key string) ([]string, error) {
	raw := strings.Split(key, "/")
	out := make([]string, len(raw))
	for i, p := range raw {
		if !strings.Contains(p, "%") {
			out[i] = p
			continue
		}
		var b strings.Builder
		for j := 0; j < len(p); j++ {
			if p[j] != '%' {
				b.WriteByte(p[j])
				continue
			}
			switch {
			case strings.HasPrefix(p[j:], "%25"):
				b.WriteByte('%')
			case strings.HasPrefix(p[j:], "%2F"):
				b.WriteByte('/')
			default:
				return nil, fmt.Errorf("inbox: split key %q: bad escape in part %d (want %%25 or %%2F)", key, i+1)
			}
			j += 2
		}
		out[i] = b.String()
	}
	return out, nil
}
