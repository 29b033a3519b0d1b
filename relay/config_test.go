package relay_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/dialect"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

func TestNewValidatesConfig(t *testing.T) {
	db := &sqlx.DB{}
	pub := memory.New()
	for _, c := range []struct {
		cfg  relay.Config
		want string
	}{
		{relay.Config{Publisher: pub}, "Dialect is required"},
		{relay.Config{Dialect: dialect.MySQL}, "Publisher is required"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, BatchSize: 10001}, "BatchSize must be between 1 and 10000"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, Workers: -1}, "Workers must be between 1 and 64"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, MaxAttempts: 5000}, "MaxAttempts"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, Prefix: "a.b.c"}, "Prefix"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, Prefix: "1x"}, "Prefix"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, Prefix: "x;y"}, "Prefix"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, Retention: -time.Hour}, "Retention must not be negative"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, PublishTimeout: -time.Second}, "PublishTimeout must be at least 100ms"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, MinPollInterval: time.Minute}, "MaxPollInterval"},
		// Floors (issue 11 item 6): a PublishTimeout of 1ns ended every batch before its first publish.
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, PublishTimeout: time.Nanosecond}, "PublishTimeout must be at least 100ms, got 1ns"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, MinBackoff: time.Nanosecond}, "MinBackoff must be at least 1ms"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, MaxBackoff: time.Nanosecond}, "MaxBackoff must be at least 1ms"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, MinPollInterval: time.Nanosecond}, "MinPollInterval must be at least 1ms"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, MaxPollInterval: time.Nanosecond}, "MaxPollInterval must be at least 1ms"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, RescanInterval: time.Nanosecond}, "RescanInterval must be at least 10ms"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, Lease: 500 * time.Millisecond}, "Lease must be at least 1s"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, ProbeInterval: time.Nanosecond}, "ProbeInterval must be at least 10ms"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, MaxBatchBytes: -1}, "MaxBatchBytes must be positive"},
		{relay.Config{Dialect: dialect.MySQL, Publisher: pub, MinBackoff: time.Hour}, "MaxBackoff"},
	} {
		_, err := relay.New(db, c.cfg)
		if !errors.Is(err, relay.ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	floors := relay.Config{Dialect: dialect.MySQL, Publisher: pub, PublishTimeout: relay.PublishTimeoutFloor,
		MinBackoff: relay.MinBackoffFloor, MaxBackoff: relay.MinBackoffFloor, MinPollInterval: relay.MinPollIntervalFloor,
		MaxPollInterval: relay.MinPollIntervalFloor, RescanInterval: relay.RescanIntervalFloor, Lease: relay.LeaseFloor,
		ProbeInterval: relay.ProbeIntervalFloor, MaxBatchBytes: 1}
	if _, err := relay.New(db, floors); err != nil {
		t.Errorf("New with every duration at its floor: %v", err)
	}
	if _, err := relay.New(nil, relay.Config{Dialect: dialect.MySQL, Publisher: pub}); !errors.Is(err, relay.ErrInvalidConfig) {
		t.Errorf("New(nil db) = %v", err)
	}
}
