package rocketmq

import (
	"testing"
	"time"
)

func TestDelayLevelFor(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {5 * time.Second, 2},
		{25 * time.Second, 4}, {59 * time.Second, 5}, {90 * time.Minute, 18}, {24 * time.Hour, 18},
	} {
		if got := delayLevelFor(tc.d); got != tc.want {
			t.Errorf("delayLevelFor(%s) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
