package rmqtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is a RocketMQ name server with two brokers of one cluster, broker-a and broker-b, for tests that lose a
// broker. scripts/rocketmq.sh starts them in a state directory and on ports of their own (never the shared
// broker's), on the jars of the shared installation (its lib/ is a link to them); they are stopped and removed
// when the test ends.
type Cluster struct {
	// Namesrv is the name server's address.
	Namesrv string
	// Brokers are the brokers' addresses by name: "broker-a", "broker-b".
	Brokers map[string]string

	script string
	env    []string
	dir    string
}

// StartCluster starts a cluster, skipping the test when the shared RocketMQ installation is not there (failing it
// under CI), and stops it when the test ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	lib := filepath.Join(filepath.Dir(filepath.Dir(AdminPath(t))), "lib") // <state>/rocketmq/bin/mqadmin
	if _, err := os.Stat(filepath.Join(lib, ".complete")); err != nil {
		t.Fatalf("rmqtest: no complete RocketMQ jars in %s: %v", lib, err)
	}
	script, err := findScript()
	if err != nil {
		t.Fatalf("rmqtest: %v", err)
	}
	dir, err := os.MkdirTemp("", "txbox-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "rocketmq"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(lib, filepath.Join(dir, "rocketmq", "lib")); err != nil {
		t.Fatal(err)
	}
	namesrv := freePort(t, nil)
	a := freeBrokerPort(t, []int{namesrv})
	b := freeBrokerPort(t, []int{namesrv, a, a - 2, a + 1})
	c := &Cluster{
		Namesrv: "127.0.0.1:" + strconv.Itoa(namesrv),
		Brokers: map[string]string{"broker-a": "127.0.0.1:" + strconv.Itoa(a), "broker-b": "127.0.0.1:" + strconv.Itoa(b)},
		script:  script,
		dir:     dir,
		env: append(os.Environ(), "TXBOX_STATE_DIR="+dir, "TXBOX_ROCKETMQ_NAMESRV_PORT="+strconv.Itoa(namesrv),
			"TXBOX_ROCKETMQ_BROKER_PORT="+strconv.Itoa(a)),
	}
	t.Cleanup(func() {
		if out, err := c.runScript(5*time.Minute, "stop"); err != nil {
			t.Errorf("rmqtest: stop the cluster: %v\n%s", err, out)
			return // leave the directory for a look
		}
		_ = os.RemoveAll(dir)
	})
	c.run(t, "start")
	c.Start(t, "broker-b")
	return c
}

// NameServers is Namesrv as the client's option type.
func (c *Cluster) NameServers() []string { return []string{c.Namesrv} }

// Broker is the cluster as a Broker (name server and broker-a), for Collect and the like.
func (c *Cluster) Broker() Broker { return Broker{Namesrv: c.Namesrv, Addr: c.Brokers["broker-a"]} }

// Topic creates a fresh topic with the given number of queues on every broker of the cluster and returns its name
// once the name server's route shows them all.
func (c *Cluster) Topic(t testing.TB, queues int) string {
	t.Helper()
	topic := Name(t, "T")
	c.run(t, "topic", topic, strconv.Itoa(queues))
	return topic
}

// Group returns a fresh consumer group with its retry topic on every broker (see Broker.Group).
func (c *Cluster) Group(t testing.TB) string {
	t.Helper()
	g := Name(t, "G")
	c.run(t, "topic", "%RETRY%"+g, "1")
	return g
}

// Kill SIGKILLs a broker and returns once its process is gone.
func (c *Cluster) Kill(t testing.TB, broker string) {
	t.Helper()
	pidFile := filepath.Join(c.dir, "rocketmq", broker+".pid")
	if broker == "broker-a" {
		pidFile = filepath.Join(c.dir, "rocketmq", "broker.pid")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("rmqtest: %s's pid: %v", broker, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("rmqtest: %s's pid file: %v", broker, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("rmqtest: SIGKILL %s (pid %d): %v", broker, pid, err)
	}
	deadline := time.Now().Add(time.Minute)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("rmqtest: %s (pid %d) still runs a minute after SIGKILL", broker, pid)
		}
		time.Sleep(20 * time.Millisecond) // polling for the process to be reaped
	}
}

// Start starts a broker of the cluster (again, after Kill) and returns once it is registered with the name
// server.
func (c *Cluster) Start(t testing.TB, broker string) {
	t.Helper()
	if broker == "broker-a" {
		c.run(t, "start") // the name server runs: only the broker starts
		return
	}
	_, port, _ := net.SplitHostPort(c.Brokers[broker])
	c.run(t, "broker-start", broker, port)
}

func (c *Cluster) run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := c.runScript(5*time.Minute, args...); err != nil {
		t.Fatalf("rmqtest: scripts/rocketmq.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// runScript runs scripts/rocketmq.sh with the cluster's environment.
func (c *Cluster) runScript(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.script, args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// findScript finds scripts/rocketmq.sh above the working directory (tests run in their package's directory).
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "rocketmq.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("scripts/rocketmq.sh not found above the working directory")
		}
		dir = up
	}
}

// freePort returns a port of 127.0.0.1 that nothing listens on, other than those in taken.
func freePort(t testing.TB, taken []int) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !slices.Contains(taken, p) {
			return p
		}
	}
	t.Fatal("rmqtest: no free port")
	return 0
}

// freeBrokerPort returns a port whose neighbours -2 (the broker's VIP channel) and +1 (HA) are free too.
func freeBrokerPort(t testing.TB, taken []int) int {
	t.Helper()
	for range 100 {
		p := freePort(t, taken)
		if p < 1026 || slices.Contains(taken, p-2) || slices.Contains(taken, p+1) {
			continue
		}
		if portFree(p-2) && portFree(p+1) {
			return p
		}
	}
	t.Fatal("rmqtest: no free broker port with free neighbours")
	return 0
}

func portFree(p int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}
