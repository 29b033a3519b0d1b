package store

import (
	"database/sql"
	"fmt"
	"time"
)

// mysqlTimeLayout is how txbox passes instants to MySQL: as UTC text. DATETIME columns hold UTC; passing text
// keeps the driver's loc= setting out of the picture, and SQL compares against UTC_TIMESTAMP(6).
const mysqlTimeLayout = "2006-01-02 15:04:05.999999"

func mysqlTimeArg(t time.Time) any { return t.UTC().Format(mysqlTimeLayout) }

// mysqlTime scans a DATETIME column whether or not the DSN has parseTime=true, and reads it as UTC.
type mysqlTime struct{ time.Time }

func mysqlNewTime() sql.Scanner           { return &mysqlTime{} }
func mysqlTimeOf(s sql.Scanner) time.Time { return s.(*mysqlTime).Time }

func (t *mysqlTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		t.Time = time.Time{}
		return nil
	case time.Time:
		// The driver applied its loc= setting; the stored wall clock is UTC.
		t.Time = time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), time.UTC)
		return nil
	case []byte:
		if tm, ok := parseMySQLDatetime(x); ok {
			t.Time = tm
			return nil
		}
		return t.parse(string(x))
	case string:
		return t.parse(x)
	}
	return fmt.Errorf("mysql: cannot scan %T into a time", v)
}

// parseMySQLDatetime reads the text protocol's DATETIME, "YYYY-MM-DD HH:MM:SS" with up to six fraction
// digits, as UTC, without allocating; ok is false for anything else (time.Parse then reports it). The relay
// reads one per claimed row.
func parseMySQLDatetime(b []byte) (tm time.Time, ok bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || b[10] != ' ' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
		minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if len(b) > 19 {
		frac := b[20:]
		if b[19] != '.' || len(frac) == 0 || len(frac) > 9 {
			return time.Time{}, false
		}
		f, ok := num(frac)
		if !ok {
			return time.Time{}, false
		}
		for range 9 - len(frac) {
			f *= 10
		}
		nsec = f
	}
	tm = time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if tm.Day() != day { // 2026-02-30 and the like: let time.Parse reject it
		return time.Time{}, false
	}
	return tm, true
}

func (t *mysqlTime) parse(s string) error {
	p, err := time.ParseInLocation("2006-01-02 15:04:05.999999", s, time.UTC)
	if err != nil {
		return fmt.Errorf("mysql: parse DATETIME %q: %w", s, err)
	}
	t.Time = p
	return nil
}
