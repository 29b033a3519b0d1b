package main

import (
	"strings"
	"testing"
)

const upstreamRace = `==================
WARNING: DATA RACE
Read at 0x00c00013bd08 by goroutine 129:
  github.com/apache/rocketmq-client-go/v2/internal.(*rmqClient).InvokeSync()
      /root/go/pkg/mod/github.com/apache/rocketmq-client-go/v2@v2.1.3/internal/client.go:576 +0x95
  github.com/apache/rocketmq-client-go/v2/consumer.(*defaultConsumer).findConsumerList()
      /root/go/pkg/mod/github.com/apache/rocketmq-client-go/v2@v2.1.3/consumer/consumer.go:952 +0x25b

Previous write at 0x00c00013bd08 by goroutine 57:
  github.com/apache/rocketmq-client-go/v2/internal.(*rmqClient).Shutdown()
      /root/go/pkg/mod/github.com/apache/rocketmq-client-go/v2@v2.1.3/internal/client.go:390 +0x1a4
  sync.(*Once).doSlow()
      /usr/local/go/src/sync/once.go:78 +0xa1
  github.com/apache/rocketmq-client-go/v2/consumer.(*pushConsumer).Shutdown()
      /root/go/pkg/mod/github.com/apache/rocketmq-client-go/v2@v2.1.3/consumer/push_consumer.go:280 +0x1a4
  github.com/txbox/txbox/internal/rmqtest.Broker.Collect.func2()
      /work/main/internal/rmqtest/consume.go:52 +0x48

Goroutine 129 (running) created at:
  github.com/txbox/txbox/inbox/rocketmq.(*Consumer).start()
      /work/main/inbox/rocketmq/consumer.go:120 +0x44
==================
`

func lines(s string) []string { return strings.SplitAfter(s, "\n") }

func TestClassify(t *testing.T) {
	// The write happens in txbox's own function: txbox's race, even though the client is on the stack too.
	ownRace := strings.Replace(upstreamRace, "github.com/apache/rocketmq-client-go/v2/internal.(*rmqClient).Shutdown()",
		"github.com/txbox/txbox/inbox/rocketmq.(*Consumer).Shutdown()", 1)
	plainRace := strings.ReplaceAll(upstreamRace, "github.com/apache/rocketmq-client-go/v2", "example.com/other")
	cases := []struct {
		name, out string
		retry     bool
	}{
		{"upstream race, txbox called the client", upstreamRace, true},
		{"upstream race only", "=== RUN   TestX\n" + upstreamRace + "    testing.go:1617: race detected during execution of test\n--- FAIL: TestX\n", true},
		{"race with a txbox frame", ownRace, false},
		{"race outside the client", plainRace, false},
		{"assertion failure", "--- FAIL: TestX\n    x_test.go:10: want 1, got 2\nFAIL\n", false},
		{"upstream race and txbox race", upstreamRace + ownRace, false},
	}
	for _, c := range cases {
		got := classify(lines(c.out))
		if (got == "") != c.retry {
			t.Errorf("%s: classify = %q, retry want %v", c.name, got, c.retry)
		}
	}
}

func TestFlagsOnly(t *testing.T) {
	got := strings.Join(flagsOnly([]string{"-race", "-count=1", "-timeout", "40m", "./...", "-run", "X", "./a"}), " ")
	if got != "-race -count=1 -timeout 40m -run X" {
		t.Errorf("flagsOnly = %q", got)
	}
}

func TestPrinterKeepsFailuresOnly(t *testing.T) {
	var b strings.Builder
	p := newPrinter(&b, false)
	for _, ev := range []event{
		{Action: "output", Package: "a", Test: "TestOK", Output: "=== RUN   TestOK\n"},
		{Action: "output", Package: "a", Test: "TestOK", Output: "    ok_test.go:1: chatter\n"},
		{Action: "pass", Package: "a", Test: "TestOK"},
		{Action: "output", Package: "a", Test: "TestBad", Output: "=== RUN   TestBad\n"},
		{Action: "output", Package: "a", Test: "TestBad", Output: "    bad_test.go:2: want 1, got 2\n"},
		{Action: "output", Package: "a", Test: "TestBad", Output: "--- FAIL: TestBad (0.00s)\n"},
		{Action: "fail", Package: "a", Test: "TestBad"},
		{Action: "output", Package: "a", Test: "TestSkip", Output: "--- SKIP: TestSkip (0.00s)\n    s_test.go:3: no pgx\n"},
		{Action: "skip", Package: "a", Test: "TestSkip"},
		{Action: "output", Package: "a", Test: "TestHung", Output: "    hung_test.go:4: waiting\n"},
		{Action: "output", Package: "a", Output: "panic: test timed out after 1s\n"},
		{Action: "output", Package: "a", Output: "FAIL\ta\t1.0s\n"},
		{Action: "fail", Package: "a"},
		{Action: "output", Package: "b", Output: "PASS\n"},
		{Action: "output", Package: "b", Output: "ok  \tb\t0.1s\n"},
	} {
		p.event(ev)
	}
	got := b.String()
	for _, want := range []string{"want 1, got 2", "--- FAIL: TestBad", "--- SKIP: TestSkip", "no pgx",
		"panic: test timed out", "hung_test.go:4: waiting", "FAIL\ta", "ok  \tb"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"chatter", "=== RUN", "PASS\n"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output has %q:\n%s", unwanted, got)
		}
	}
}
