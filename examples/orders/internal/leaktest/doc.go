// Package leaktest lists the goroutines that rocketmq-client-go leaves running after Shutdown
// (apache/rocketmq-client-go#1147), for the example's goroutine-leak checks. Only tests import it.
package leaktest
