package faults

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Service is one of the servers a Stack runs.
type Service string

// The services of a Stack, named as the scripts are (scripts/<service>.sh).
const (
	Postgres Service = "postgres"
	MariaDB  Service = "mariadb"
	RocketMQ Service = "rocketmq" // name server and broker
)

// Stack is a private set of servers that a fault run starts, kills and stops through the project's scripts
// (scripts/postgres.sh, mariadb.sh, rocketmq.sh): its own state directory and its own ports on 127.0.0.1, so it
// never touches the servers tests and users run. PostgreSQL runs with fsync and synchronous_commit on, MariaDB
// flushes its log at every commit. Close stops everything it started and removes the state directory.
type Stack struct {
	Scripts string // the directory of the service scripts
	Dir     string // TXBOX_STATE_DIR
	// Ports, chosen free by NewStack. The broker also listens on BrokerPort-2 and BrokerPort+1.
	PGPort, MySQLPort, NamesrvPort, BrokerPort int
	// RocketMQLib is the directory of installed RocketMQ jars to use (TXBOX_ROCKETMQ_LIB); empty: fetch them.
	RocketMQLib string
	// Log receives the scripts' output. Default: discarded.
	Log io.Writer
	// Keep leaves the state directory (data and logs) in place on Close, for a look after a failure.
	Keep bool

	mu      sync.Mutex
	started map[Service]bool
}

// NewStack prepares a stack in a new directory under parent (os.TempDir() when empty), with free ports. It starts
// nothing.
func NewStack(scripts, parent string) (*Stack, error) {
	dir, err := os.MkdirTemp(parent, "txbox-faults-")
	if err != nil {
		return nil, fmt.Errorf("faults: state directory: %w", err)
	}
	// The services run as their own users (postgres, mysql): they must be able to reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("faults: state directory: %w", err)
	}
	s := &Stack{Scripts: scripts, Dir: dir, started: map[Service]bool{}}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("faults: state directory: %w", err)
	}
	for _, p := range []*int{&s.PGPort, &s.MySQLPort, &s.NamesrvPort} {
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	if s.BrokerPort, err = freeBrokerPort(); err != nil {
		return nil, err
	}
	return s, nil
}

// Ports are chosen below the kernel's ephemeral range: a client dialing a port of a server that is down can be
// given that very port as its own (TCP self-connect), and the server then cannot bind it when it restarts
// (measured: a broker restart failed with "Address already in use").
func freePort() (int, error) { return freePorts(0) }

// freeBrokerPort finds p with p-2, p and p+1 free: a broker listens on all three.
func freeBrokerPort() (int, error) { return freePorts(-2, 0, 1) }

// freePorts finds a port p such that p+d is free for every d (just p without any d).
func freePorts(ds ...int) (int, error) {
	lo, hi := 10000, ephemeralStart()-1
	if hi-lo < 1000 {
		lo = 2000
	}
	if len(ds) == 0 {
		ds = []int{0}
	}
	for range 500 {
		p := lo + 2 + rand.IntN(hi-lo-4)
		ok := true
		for _, d := range ds {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+d))
			if err != nil {
				ok = false
				break
			}
			_ = ln.Close()
		}
		if ok {
			return p, nil
		}
	}
	return 0, errors.New("faults: no free ports below the ephemeral range")
}

// ephemeralStart is the first port of the kernel's ephemeral range (32768 when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2000 {
				return n
			}
		}
	}
	return 32768
}

func (s *Stack) env() []string {
	env := append(os.Environ(), "TXBOX_STATE_DIR="+s.Dir, "TXBOX_PG_PORT="+strconv.Itoa(s.PGPort),
		"TXBOX_MYSQL_PORT="+strconv.Itoa(s.MySQLPort), "TXBOX_ROCKETMQ_NAMESRV_PORT="+strconv.Itoa(s.NamesrvPort),
		"TXBOX_ROCKETMQ_BROKER_PORT="+strconv.Itoa(s.BrokerPort), "TXBOX_PG_DURABLE=1", "TXBOX_MYSQL_DURABLE=1")
	if s.RocketMQLib != "" {
		env = append(env, "TXBOX_ROCKETMQ_LIB="+s.RocketMQLib)
	}
	return env
}

func (s *Stack) script(ctx context.Context, svc Service, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.Scripts, string(svc)+".sh"), args...)
	cmd.Env = s.env()
	var out bytes.Buffer
	cmd.Stdout = &out
	log := s.Log
	if log == nil {
		log = io.Discard
	}
	cmd.Stderr = log
	// The script's own children (the servers) are started with setsid; the script itself may be cancelled.
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("faults: %s.sh %s: %w", svc, strings.Join(args, " "), err)
	}
	return out.Bytes(), nil
}

// Start starts svc (or finds it running) and waits until it is ready.
func (s *Stack) Start(ctx context.Context, svc Service) error {
	s.mu.Lock()
	s.started[svc] = true
	s.mu.Unlock()
	_, err := s.script(ctx, svc, "start")
	return err
}

// Stop stops svc gracefully.
func (s *Stack) Stop(ctx context.Context, svc Service) error {
	_, err := s.script(ctx, svc, "stop")
	return err
}

// Env returns the `export NAME='value'` lines of svc's script as a map (DSNs and addresses).
func (s *Stack) Env(ctx context.Context, svc Service) (map[string]string, error) {
	out, err := s.script(ctx, svc, "env")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			m[k] = strings.Trim(v, "'")
		}
	}
	return m, sc.Err()
}

// Kill sends SIGKILL to svc's server process (PostgreSQL: the postmaster and its children, as a machine that
// loses power would; RocketMQ: the broker only, the name server stays) and returns once they are gone.
func (s *Stack) Kill(svc Service) error {
	var pids []int
	switch svc {
	case Postgres:
		pid, err := pidFile(filepath.Join(s.Dir, "postgres", "data", "postmaster.pid"))
		if err != nil {
			return err
		}
		pids = append(children(pid), pid)
	case MariaDB:
		pid, err := pidFile(filepath.Join(s.Dir, "mariadb", "mariadbd.pid"))
		if err != nil {
			return err
		}
		pids = []int{pid}
	case RocketMQ:
		pid, err := pidFile(filepath.Join(s.Dir, "rocketmq", "broker.pid"))
		if err != nil {
			return err
		}
		pids = []int{pid}
	default:
		return fmt.Errorf("faults: unknown service %q", svc)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("faults: %s process %d still alive 30s after SIGKILL", svc, pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Close stops every service Start started and removes the state directory (unless Keep). It keeps going after
// errors and returns them all.
func (s *Stack) Close() error {
	s.mu.Lock()
	started := s.started
	s.started = map[Service]bool{}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var errs []error
	for _, svc := range []Service{RocketMQ, MariaDB, Postgres} {
		if started[svc] {
			errs = append(errs, s.Stop(ctx, svc))
		}
	}
	if !s.Keep {
		errs = append(errs, os.RemoveAll(s.Dir))
	}
	return errors.Join(errs...)
}

func pidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("faults: read pid: %w", err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("faults: bad pid in %s: %q", path, first)
	}
	return pid, nil
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// children returns the pids whose parent is pid.
func children(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, c)
		}
	}
	return out
}

// CleanStale stops the services of stacks under parent whose owner process is gone (a run that was killed
// before it could clean up) and removes their directories. It returns the directories it removed.
func CleanStale(scripts, parent string) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, err := filepath.Glob(filepath.Join(parent, "txbox-faults-*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, d := range dirs {
		pid, err := pidFile(filepath.Join(d, "owner.pid"))
		if err == nil && alive(pid) {
			continue
		}
		s := &Stack{Scripts: scripts, Dir: d, started: map[Service]bool{RocketMQ: true, MariaDB: true, Postgres: true}}
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
		removed = append(removed, d)
	}
	return removed, errors.Join(errs...)
}
