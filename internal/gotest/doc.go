// Command gotest runs `go test` for `make test` and retries, at most three times, a package whose only trouble
// was a data race inside rocketmq-client-go.
//
// The RocketMQ client has data races of its own that txbox cannot fix or avoid completely (a consumer shut down
// while the broker triggers a rebalance: apache/rocketmq-client-go#1115). Under -race they fail whichever test
// is running at the moment, a few percent of runs. Dropping -race for the broker packages would hide races in
// txbox's own code, so instead every race report is read: when both racing accesses are entirely inside
// rocketmq-client-go (the first frame outside the runtime and sync belongs to the client, whoever called it),
// the package is run again, at most three times (relay/rocketmq trips it in about one run in six), and each
// retry is printed with the tests that raced. It is retried only when nothing else failed: any other race, an
// assertion (a file.go:line: message of a failed test), a panic, a timeout or a package-level message (a leak
// report) fails the run at once, even beside an upstream race. t.Log and t.Error print the same way, so tests
// of the broker packages that log on success start the message with "info: ", which is not counted.
//
// The log stays short: the output of a test that passed is dropped; failed and skipped tests, package
// summaries and output outside tests are printed. GOTEST_VERBOSE=1 prints everything, like go test -v.
//
// Usage: go run ./internal/gotest [go test flags and packages]
package main
