// Command mutants checks that the tests pin txbox's invariants: it applies, one at a time, a one-line change
// that breaks an invariant (a mutation) to a clean copy of the repository, runs the tests that should catch it,
// and prints a table: the mutation, whether a test caught it, which one, and how long it took. It fails when a
// mutation survives or takes 60 s or more to be caught.
//
// Usage: go run ./internal/mutants [-run REGEXP] [-keep]
//
// The copy is a git worktree of HEAD in a temporary directory (uncommitted changes are not in it), removed at the
// end unless -keep. The tests run against the services of scripts/services.sh (the TXBOX_* variables must be
// set, as for make test), without -race: a mutation must be caught by an assertion, not by a race.
package main
