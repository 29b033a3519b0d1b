package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/txbox/txbox/dialect"
)

// CPU time, the measure that decides code changes on a shared, loaded machine where wall time is noise (the
// virtual machine has no hardware counters for perf stat or callgrind-like instruction counts to use): the
// server's, summed over the threads of its processes from /proc/<pid>/task/*/schedstat (nanoseconds on CPU),
// and this process's own from getrusage. The server's processes are found from its pid file under the
// profile's state directory (scripts/lib.sh's layout): PostgreSQL's postmaster and its children, MariaDB's one
// process. Only the durable profile's servers are this program's alone: the test services' serve other tests
// too (connections come and go, so their sum even drops), and for them only the client's CPU is reported.

// stateDir is where the profile's servers keep their pid files.
func stateDir(profile string) string {
	if profile == "durable" {
		if d := os.Getenv("TXBOX_BENCH_STATE_DIR"); d != "" {
			return d
		}
		return "/var/tmp/txbox-bench"
	}
	if d := os.Getenv("TXBOX_STATE_DIR"); d != "" {
		return d
	}
	return "/var/tmp/txbox"
}

// serverCPU returns the CPU time the server of d in the profile's state directory has used so far by its
// live processes, or false when it cannot be read (another machine, no pid file).
func serverCPU(profile string, d dialect.Dialect) (time.Duration, bool) {
	if profile != "durable" {
		return 0, false
	}
	var pidFile string
	if d == dialect.Postgres {
		pidFile = filepath.Join(stateDir(profile), "postgres", "data", "postmaster.pid")
	} else {
		pidFile = filepath.Join(stateDir(profile), "mariadb", "mariadbd.pid")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	root := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	pids := []string{root}
	if d == dialect.Postgres {
		procs, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, p := range procs {
			st, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
			i := strings.LastIndexByte(string(st), ')')
			f := strings.Fields(string(st[i+1:]))
			if len(f) > 1 && f[1] == root {
				pids = append(pids, filepath.Base(filepath.Dir(p)))
			}
		}
	}
	var total time.Duration
	for _, pid := range pids {
		tasks, _ := filepath.Glob("/proc/" + pid + "/task/*/schedstat")
		for _, t := range tasks {
			s, err := os.ReadFile(t)
			if err != nil {
				continue
			}
			f := strings.Fields(string(s))
			if len(f) == 0 {
				continue
			}
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			total += time.Duration(ns)
		}
	}
	return total, true
}

// selfCPU is this process's CPU time so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
