//go:build leakcheck

package main

import (
	"os"

	"go.uber.org/goleak"

	"github.com/txbox/txbox/internal/rmqtest"
)

// The test build (go build -tags leakcheck) checks at exit that every command stopped its goroutines: a relay
// that left a worker, a listener or a server running after SIGTERM fails with exit status 3. The RocketMQ
// client's own goroutines, which outlive its Shutdown (apache/rocketmq-client-go#1147), are ignored as in the
// package tests. TXBOX_TEST_LEAK=1 starts a goroutine that never ends, so the tests can see the check catch one.
func init() {
	if os.Getenv("TXBOX_TEST_LEAK") == "1" {
		block := make(chan struct{})
		go func() { <-block }()
	}
	exitCheck = func() error { return goleak.Find(rmqtest.LeakOptions()...) }
}
