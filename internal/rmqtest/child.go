package rmqtest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RunInChild runs the top-level test named test of this test binary in a child process with the environment
// variable env set, and fails t unless the child reports it passed. Tests that flip process-global switches of
// rocketmq-client-go (TLS) run that way, so that no other test's client dials while the switch is on. In the child
// itself, t is skipped.
func RunInChild(t *testing.T, env, test string) {
	t.Helper()
	if os.Getenv(env) != "" {
		t.Skip("this is the child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("%s (child process): %v\n%s", test, err, out)
	}
	t.Logf("info: child process:\n%s", out)
}

// OnlyInChild skips t unless this process is the child RunInChild starts with env.
func OnlyInChild(t *testing.T, env string) {
	t.Helper()
	if os.Getenv(env) == "" {
		t.Skip("runs in the process RunInChild starts")
	}
}
