package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
)

// txboxBin is the CLI built once for the package's tests: they run the real binary, as operators do.
var txboxBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "txbox-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	txboxBin = filepath.Join(dir, "txbox")
	// -tags leakcheck: every command checks at exit that it left no goroutine running (exit status 3).
	build := exec.Command("go", "build", "-race", "-tags", "leakcheck", "-o", txboxBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build txbox:", err)
		os.Exit(1)
	}
	// The tests' broker consumers leave rocketmq-client-go's own goroutines behind.
	code := testdb.Check(m, rmqtest.LeakOptions()...)
	_ = os.RemoveAll(dir) // before os.Exit, which runs no deferred call
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run executes the CLI against db (its dialect and isolated DSN) with extra environment.
func run(t *testing.T, db *testdb.DB, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, txboxBin, args...)
	cmd.Env = append(os.Environ(), env...)
	if db != nil {
		cmd.Env = append(cmd.Env, "TXBOX_DIALECT="+db.Dialect.Name(), "TXBOX_DSN="+db.DSN)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run txbox %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// cliTargets runs fn on MariaDB and on PostgreSQL (the CLI always uses pgx for PostgreSQL).
func cliTargets(t *testing.T, fn func(t *testing.T, db *testdb.DB), opts ...testdb.Option) {
	for _, tg := range testdb.Targets {
		if tg.Driver == "postgres" {
			continue
		}
		t.Run(tg.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, testdb.Open(t, tg, opts...))
		})
	}
}

// The test build checks for leaked goroutines at exit: a goroutine that never ends fails the command with exit
// status 3, whatever the command did (here --help, which succeeds).
func TestLeakCheckCatchesALeak(t *testing.T) {
	if r := run(t, nil, nil, "--help"); r.code != 0 {
		t.Fatalf("--help without a leak: exit %d\n%s", r.code, r.stderr)
	}
	r := run(t, nil, []string{"TXBOX_TEST_LEAK=1"}, "--help")
	if r.code != 3 || !strings.Contains(r.stderr, "goroutines leaked") {
		t.Fatalf("--help with a leaked goroutine: exit %d, stderr:\n%s\nwant exit 3 naming the leak", r.code, r.stderr)
	}
}
