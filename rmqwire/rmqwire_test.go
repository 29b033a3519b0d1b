package rmqwire

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestKeyRoundTrip(t *testing.T) {
	for _, k := range []string{"", "12345/payment", "a b", " lead", "trail ", "%20", "%2520", "100%", "%", "%2",
		"a  b%%c", "Order-1", "order-1 ", "ünï cødé 中文", "tab\tand\nnewline"} {
		enc := EncodeKey(k)
		if strings.Contains(enc, " ") {
			t.Errorf("EncodeKey(%q) = %q contains a space", k, enc)
		}
		if got := DecodeKey(enc); got != k {
			t.Errorf("DecodeKey(EncodeKey(%q)) = %q", k, got)
		}
		if !strings.ContainsAny(k, "% ") && enc != k {
			t.Errorf("EncodeKey(%q) = %q, want it unchanged", k, enc)
		}
	}
}

func FuzzKeyRoundTrip(f *testing.F) {
	f.Add("a b%20c")
	f.Fuzz(func(t *testing.T, k string) {
		enc := EncodeKey(k)
		if strings.Contains(enc, " ") || DecodeKey(enc) != k {
			t.Fatalf("key %q -> %q -> %q", k, enc, DecodeKey(enc))
		}
	})
}

func TestHeadersRoundTrip(t *testing.T) {
	in := map[string]string{"trace-id": "abc", "empty": "", "with space": "", "x": "y z"}
	props := map[string]string{"KEYS": "k", "UNIQ_KEY": "u", PropKey: "k"}
	if err := SetHeaders(props, in); err != nil {
		t.Fatal(err)
	}
	if got := Headers(props); !maps.Equal(got, in) {
		t.Fatalf("Headers = %v, want %v", got, in)
	}
}

func TestSetHeadersRejects(t *testing.T) {
	for name, h := range map[string]map[string]string{
		"reserved":      {"KEYS": "x"},
		"txbox":         {PropKey: "x"},
		"empty name":    {"": "x"},
		"separator val": {"a": "x\x01y"},
		"separator key": {"a\x02": "x"},
	} {
		if err := SetHeaders(map[string]string{}, h); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
