package partition

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/store"
)

func TestPeriodFor(t *testing.T) {
	for _, tc := range []struct{ retention, want time.Duration }{
		{7 * 24 * time.Hour, 24 * time.Hour},
		{30 * 24 * time.Hour, 4 * 24 * time.Hour},
		{24 * time.Hour, 3 * time.Hour},
		{time.Hour, time.Hour}, // never below MinPeriod
		{10 * time.Minute, time.Hour},
	} {
		if got := PeriodFor(tc.retention); got != tc.want {
			t.Errorf("PeriodFor(%s) = %s, want %s", tc.retention, got, tc.want)
		}
	}
}

// A partition expires when its last bucket started at least the retention ago: every row it can hold (rows of
// bucket b are written before b+1 starts) is older than the retention.
func TestExpired(t *testing.T) {
	st := store.PartitionState{Period: time.Hour, Retention: 24 * time.Hour, Now: time.Unix(100*3600+1800, 0)}
	for _, tc := range []struct {
		p    store.Partition
		want bool
	}{
		{store.Partition{Lo: 75, Hi: 76}, true},  // ends at hour 76 = now - 24h30m
		{store.Partition{Lo: 76, Hi: 77}, false}, // its last rows may be 23h30m old
		{store.Partition{Lo: -1 << 63, Hi: 76}, true},
		{store.Partition{Lo: 70, Hi: 80}, false},
		{store.Partition{Lo: 100, Hi: 1<<63 - 1, CatchAll: true}, false},
	} {
		if got := expired(st, tc.p); got != tc.want {
			t.Errorf("expired(%s) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

func TestUncovered(t *testing.T) {
	parts := []store.Partition{{Lo: 10, Hi: 12}, {Lo: 15, Hi: 16}, {CatchAll: true, Lo: 16, Hi: 1<<63 - 1}}
	for _, tc := range []struct {
		lo, hi int64
		want   string
	}{
		{5, 20, "[[5 10] [12 15] [16 20]]"},
		{10, 12, "[]"},
		{11, 16, "[[12 15]]"},
	} {
		if got := fmt.Sprint(uncovered(parts, tc.lo, tc.hi)); got != tc.want && !(tc.want == "[]" && got == "[]") {
			t.Errorf("uncovered(%d, %d) = %s, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
	if covered(parts, 16) {
		t.Error("the catch-all counted as covering a bucket")
	}
}

func TestNewValidates(t *testing.T) {
	for want, c := range map[string]Config{
		"unknown table":         {Table: "other", Retention: time.Hour},
		"Retention must":        {Table: store.InboxKeysTable},
		"whole number":          {Table: store.InboxKeysTable, Retention: time.Hour, Period: 1500 * time.Millisecond},
		"Ahead must":            {Table: store.InboxKeysTable, Retention: time.Hour, Ahead: 101},
		"nil database or store": {Table: store.InboxKeysTable, Retention: time.Hour},
	} {
		if _, err := New(nil, nil, c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v) = %v, want an error saying %q", c, err, want)
		}
	}
}
