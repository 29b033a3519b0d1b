package testdb

import "go.uber.org/goleak"

// LeakOption configures the goroutine-leak check in Main.
type LeakOption = goleak.Option

// IgnoreTopFunction ignores goroutines whose top function is f (for clients that keep their own goroutines).
func IgnoreTopFunction(f string) LeakOption { return goleak.IgnoreTopFunction(f) }

// IgnoreAnyFunction ignores goroutines with f anywhere in their stack.
func IgnoreAnyFunction(f string) LeakOption { return goleak.IgnoreAnyFunction(f) }

func findLeaks(opts ...LeakOption) error { return goleak.Find(opts...) }
