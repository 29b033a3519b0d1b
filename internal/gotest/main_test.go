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

// failedTest is a package output in which one test printed out and failed.
func failedTest(out string) *pkgOutput {
	return &pkgOutput{tests: map[string][]string{"TestX": strings.SplitAfter(out, "\n")}, failed: []string{"TestX"}}
}

const raceFooter = "    testing.go:1617: race detected during execution of test\n--- FAIL: TestX (0.10s)\n"

func TestClassify(t *testing.T) {
	// The write happens in txbox's own function: txbox's race, even though the client is on the stack too.
	ownRace := strings.Replace(upstreamRace, "github.com/apache/rocketmq-client-go/v2/internal.(*rmqClient).Shutdown()",
		"github.com/txbox/txbox/inbox/rocketmq.(*Consumer).Shutdown()", 1)
	plainRace := strings.ReplaceAll(upstreamRace, "github.com/apache/rocketmq-client-go/v2", "example.com/other")
	twoTests := &pkgOutput{tests: map[string][]string{
		"TestRace":   strings.SplitAfter("=== RUN   TestRace\n"+upstreamRace+raceFooter, "\n"),
		"TestAssert": strings.SplitAfter("=== RUN   TestAssert\n    x_test.go:10: want 1, got 2\n--- FAIL: TestAssert\n", "\n"),
		"TestPassed": strings.SplitAfter("    y_test.go:3: chatter of a test that passed\n", "\n"),
	}, failed: []string{"TestRace", "TestAssert"}}
	leak := failedTest(upstreamRace + raceFooter)
	leak.own = []string{"testdb: goroutines leaked: found unexpected goroutines\n", "FAIL\tgithub.com/x\t1.0s\n"}
	cases := []struct {
		name  string
		out   *pkgOutput
		retry bool
	}{
		{"upstream race, txbox called the client", failedTest(upstreamRace), true},
		{"upstream race only", failedTest("=== RUN   TestX\n" + upstreamRace + raceFooter), true},
		{"upstream race beside client log records", failedTest("2026/11/30 07:39:02 WARN pull message from broker error\n" +
			upstreamRace + raceFooter), true},
		{"upstream race beside an info log", failedTest("    x_test.go:7: info: 12 messages relayed\n" + upstreamRace + raceFooter), true},
		{"upstream race and an assertion in the same test", failedTest("    x_test.go:10: want 1, got 2\n" + upstreamRace + raceFooter), false},
		{"upstream race and a plain t.Log (indistinguishable from t.Error)", failedTest("    x_test.go:7: 12 relayed\n" + upstreamRace + raceFooter), false},
		{"upstream race in one test, assertion in another", twoTests, false},
		{"upstream race and a panic", failedTest(upstreamRace + "panic: runtime error: index out of range\n"), false},
		{"upstream race and a leak report of the package", leak, false},
		{"race with a txbox frame", failedTest(ownRace + raceFooter), false},
		{"race outside the client", failedTest(plainRace + raceFooter), false},
		{"assertion failure", failedTest("--- FAIL: TestX\n    x_test.go:10: want 1, got 2\n"), false},
		{"upstream race and txbox race", failedTest(upstreamRace + ownRace + raceFooter), false},
	}
	for _, c := range cases {
		got := classify(c.out)
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
