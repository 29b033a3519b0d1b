package inbox_test

import (
	"slices"
	"testing"

	"github.com/txbox/txbox/inbox"
)

func TestKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		parts []string
		want  string
	}{
		{[]string{"12345", "payment"}, "12345/payment"},
		{[]string{"a/b", "c"}, "a%2Fb/c"},
		{[]string{"a", "b/c"}, "a/b%2Fc"},
		{[]string{"100%", "x"}, "100%25/x"},
		{[]string{"%2F"}, "%252F"},
		{[]string{"", "x"}, "/x"},
		{[]string{"Order-1 "}, "Order-1 "},
	} {
		got := inbox.Key(tc.parts...)
		if got != tc.want {
			t.Errorf("Key(%q) = %q, want %q", tc.parts, got, tc.want)
		}
		back, err := inbox.SplitKey(got)
		if err != nil || !slices.Equal(back, tc.parts) {
			t.Errorf("SplitKey(%q) = %q, %v; want %q", got, back, err, tc.parts)
		}
	}
	// Different part lists never collide.
	seen := map[string][]string{}
	for _, parts := range [][]string{{"a/b", "c"}, {"a", "b/c"}, {"a", "b", "c"}, {"a%2Fb", "c"}, {"a/b/c"}, {"a", "b%2Fc"}} {
		k := inbox.Key(parts...)
		if prev, ok := seen[k]; ok {
			t.Errorf("Key(%q) == Key(%q) == %q", parts, prev, k)
		}
		seen[k] = parts
	}
	if _, err := inbox.SplitKey("a%2"); err == nil {
		t.Error("SplitKey accepted a truncated escape")
	}
	if _, err := inbox.SplitKey("a%41"); err == nil {
		t.Error("SplitKey accepted an escape Key never writes")
	}
}

func FuzzKeyRoundTrip(f *testing.F) {
	f.Add("a/b", "%", "")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		parts := []string{a, b, c}
		back, err := inbox.SplitKey(inbox.Key(parts...))
		if err != nil || !slices.Equal(back, parts) {
			t.Fatalf("round trip of %q gave %q, %v", parts, back, err)
		}
	})
}
