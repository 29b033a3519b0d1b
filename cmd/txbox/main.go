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
	root, g := newRootCmd()
	err := root.ExecuteContext(ctx)
	if err != nil {
		// Errors pass on text from drivers, the broker and the data (keys, topics): no secret, no raw control
		// character reaches the terminal.
		fmt.Fprintln(os.Stderr, "txbox:", escapeLines(g.scrub.text(err.Error())))
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError marks bad flags or arguments (exit status 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }
