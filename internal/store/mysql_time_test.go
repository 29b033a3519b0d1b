package store

import (
	"testing"
	"time"
)

// The fast DATETIME reader agrees with time.Parse on everything it accepts and leaves the rest to it.
func TestParseMySQLDatetime(t *testing.T) {
	for _, s := range []string{
		"2026-11-25 22:55:08", "2026-11-25 22:55:08.1", "2026-11-25 22:55:08.123456", "2026-11-25 22:55:08.000001",
		"1970-01-01 00:00:00.000000", "9999-12-31 23:59:59.999999", "2024-02-29 12:00:00",
		"2026-02-30 00:00:00", "0000-00-00 00:00:00", "2026-13-01 00:00:00", "2026-11-25T22:55:08", "2026-11-25 22:55",
		"2026-11-25 22:55:08.", "2026-11-25 22:55:08x123", "2026-11-25 24:00:00", "2026-1a-25 22:55:08", "",
	} {
		want, werr := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
		got, ok := parseMySQLDatetime([]byte(s))
		switch {
		case ok && werr != nil:
			t.Errorf("%q: fast path accepted %v, time.Parse rejects it: %v", s, got, werr)
		case ok && !got.Equal(want):
			t.Errorf("%q: fast path %v, time.Parse %v", s, got, want)
		case !ok && werr == nil && len(s) == 19 || !ok && werr == nil && len(s) > 20 && len(s) <= 26:
			t.Errorf("%q: fast path declined a plain DATETIME", s)
		}
		var mt mysqlTime
		err := mt.Scan([]byte(s))
		if (err == nil) != (werr == nil) || err == nil && !mt.Time.Equal(want) {
			t.Errorf("%q: Scan = %v, %v; want %v, %v", s, mt.Time, err, want, werr)
		}
	}
}
