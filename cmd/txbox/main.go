package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default handling: a second SIGINT/SIGTERM kills the process at once
	// instead of waiting for a graceful stop.
	context.AfterFunc(ctx, stop)
	err := newRootCmd().ExecuteContext(ctx)
	if exitCheck != nil {
		stop()
		if lerr := exitCheck(); lerr != nil {
			fmt.Fprintln(os.Stderr, "txbox: goroutines leaked:", lerr)
			os.Exit(3)
		}
	}
	if err != nil {
		// Errors pass on text from the data (keys, topics): no raw control character reaches the terminal. (Driver
		// errors are scrubbed of secrets where the commands wrap them: scrubbing this whole line would also
		// mangle the CLI's own words when a password is one of them.)
		fmt.Fprintln(os.Stderr, "txbox:", escapeLines(err.Error()))
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// exitCheck, set only in the leak-checking test build (leakcheck.go), runs after the command returned.
var exitCheck func() error

// usageError marks bad flags or arguments (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
