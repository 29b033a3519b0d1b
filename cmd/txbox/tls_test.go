package main_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// txbox relay --tls publishes over TLS (the test broker takes TLS and plain connections on the same ports) with
// the security token from the environment, which it never prints; a token without keys is a usage error.
func TestRelayOverTLS(t *testing.T) {
	b := rmqtest.Get(t)
	cliTargets(t, func(t *testing.T, db *testdb.DB) {
		topic := b.Topic(t, 2)
		enqueue(t, db, outbox.Message{Topic: topic, Key: "over-tls-1"}, outbox.Message{Topic: topic, Key: "over-tls-2"})
		r := run(t, db, []string{"TXBOX_ROCKETMQ_SECURITY_TOKEN=T0ken-value"}, "relay", "--namesrv", b.Namesrv, "--tls")
		if r.code != 2 || !strings.Contains(r.stderr, "--security-token needs") || strings.Contains(r.stderr, "T0ken") {
			t.Fatalf("a token without keys: exit %d\n%s", r.code, r.stderr)
		}
		p := start(t, db, "relay", "--namesrv", b.Namesrv, "--group", rmqtest.Name(t, "P"), "--tls",
			"--max-poll-interval", "200ms", "--log-level", "debug")
		waitFor(t, time.Minute, func() (bool, string) {
			n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox")
			return n == 0, fmt.Sprintf("%d rows not published\n%s", n, p.log())
		})
		if code := p.stop(t); code != 0 {
			t.Fatalf("relay exit status %d:\n%s", code, p.log())
		}
	})
}
