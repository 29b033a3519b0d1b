package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// upstream is the module whose own races are retried.
const upstream = "github.com/apache/rocketmq-client-go/"

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// maxRetries is how many more runs a package whose failures were all upstream races gets.
const maxRetries = 3

func main() {
	args := os.Args[1:]
	flags := flagsOnly(args)
	pkgs := args
	for attempt := 0; ; attempt++ {
		failed, outputs, err := run(pkgs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "gotest:", err)
			os.Exit(2)
		}
		if len(failed) == 0 {
			return
		}
		for _, pkg := range failed {
			if verdict := classify(outputs[pkg]); verdict != "" {
				fmt.Printf("gotest: %s failed: %s\n", pkg, verdict)
				os.Exit(1)
			}
		}
		if attempt == maxRetries {
			fmt.Printf("gotest: %s failed on rocketmq-client-go data races %d times in a row\n",
				strings.Join(failed, " "), attempt+1)
			os.Exit(1)
		}
		fmt.Printf("gotest: %s failed only on data races inside rocketmq-client-go (apache/rocketmq-client-go#1115); running again\n",
			strings.Join(failed, " "))
		pkgs = append(append([]string(nil), flags...), failed...)
	}
}

// run runs go test -json with args, prints its output through a printer, and returns the failed packages
// with each package's whole output.
func run(args []string) (failed []string, outputs map[string][]string, err error) {
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	outputs = map[string][]string{}
	pr := newPrinter(os.Stdout, os.Getenv("GOTEST_VERBOSE") != "")
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if json.Unmarshal(line, &ev) != nil {
			fmt.Println(string(line)) // build errors and the like are not JSON
			continue
		}
		pr.event(ev)
		if ev.Output != "" {
			outputs[ev.Package] = append(outputs[ev.Package], ev.Output)
		}
		if ev.Action == "fail" && ev.Test == "" {
			failed = append(failed, ev.Package)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	werr := cmd.Wait()
	if werr != nil && len(failed) == 0 {
		return nil, nil, fmt.Errorf("go test failed without a failed package (build error?): %w", werr)
	}
	return failed, outputs, nil
}

// printer keeps the log short: a test's output is held until the test ends and printed only when it failed
// or was skipped (the skip's reason); a package's own lines (its ok/FAIL summary, output outside tests) are
// printed as they come. When a package fails, the held output of its tests that never ended (a panic, a
// timeout) is printed too. verbose prints everything as it comes, like go test -v.
type printer struct {
	w       io.Writer
	verbose bool
	held    map[[2]string][]string // (package, test) → output so far
}

func newPrinter(w io.Writer, verbose bool) *printer {
	return &printer{w: w, verbose: verbose, held: map[[2]string][]string{}}
}

func (p *printer) event(ev event) {
	if p.verbose {
		io.WriteString(p.w, ev.Output)
		return
	}
	if ev.Test == "" {
		if ev.Action == "fail" {
			for k, out := range p.held {
				if k[0] == ev.Package {
					p.write(out)
					delete(p.held, k)
				}
			}
		}
		if ev.Output != "" && ev.Output != "PASS\n" {
			io.WriteString(p.w, ev.Output)
		}
		return
	}
	k := [2]string{ev.Package, ev.Test}
	switch ev.Action {
	case "output":
		p.held[k] = append(p.held[k], ev.Output)
	case "fail", "skip":
		p.write(p.held[k])
		delete(p.held, k)
	case "pass":
		delete(p.held, k)
	}
}

func (p *printer) write(lines []string) {
	for _, l := range lines {
		if strings.HasPrefix(l, "=== ") { // RUN, PAUSE, CONT, NAME: noise without the passing tests around them
			continue
		}
		io.WriteString(p.w, l)
	}
}

// classify returns "" when every failure in a package's output is explained by data races whose two
// accesses both happen in upstream code, or else why the failure counts.
//
// An access happens where the first frame of its stack that is not the runtime or the standard library's sync
// packages runs. txbox frames further down (txbox calling the client's Shutdown, say) do not make the race
// txbox's: the memory the two accesses touch belongs to the client.
func classify(lines []string) string {
	races, own := 0, 0
	inRace, section := false, 0
	var accessors []string // the accessing function of each access section
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case t == "WARNING: DATA RACE":
			inRace, section, accessors = true, 0, nil
			races++
		case !inRace:
		case t == "==================":
			if !upstreamAccesses(accessors) {
				own++
			}
			inRace = false
		case strings.Contains(t, " at 0x") && strings.Contains(t, " by "):
			section++
			accessors = append(accessors, "")
		case strings.HasPrefix(t, "Goroutine "):
			section = 3 // creation stacks do not count: txbox starts the client's goroutines
		case section >= 1 && section <= 2 && accessors[section-1] == "" && isFunctionFrame(t) && !isRuntimeFrame(t):
			accessors[section-1] = t
		}
	}
	switch {
	case races == 0:
		return "not a data race"
	case own > 0:
		return fmt.Sprintf("%d data race(s) not inside rocketmq-client-go", own)
	}
	return ""
}

// upstreamAccesses reports whether a race had two accesses and both happened in upstream code.
func upstreamAccesses(accessors []string) bool {
	if len(accessors) != 2 {
		return false
	}
	for _, a := range accessors {
		if !strings.HasPrefix(a, upstream) {
			return false
		}
	}
	return true
}

// isFunctionFrame tells a stack's function lines from its file:line lines (which start with '/').
func isFunctionFrame(t string) bool {
	return t != "" && !strings.HasPrefix(t, "/") && strings.HasSuffix(t, ")")
}

// isRuntimeFrame reports frames of the runtime and of the standard library's synchronisation, where an access
// is detected but which do not own the memory.
func isRuntimeFrame(t string) bool {
	for _, p := range []string{"runtime.", "sync.", "sync/atomic.", "internal/", "reflect."} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// flagsOnly drops the package patterns from go test arguments (those not starting with '-' that do not
// follow a flag taking a value); the retried packages are given explicitly.
func flagsOnly(args []string) []string {
	var out []string
	valued := map[string]bool{"-timeout": true, "-run": true, "-count": true, "-p": true, "-parallel": true,
		"-tags": true, "-skip": true, "-bench": true, "-benchtime": true, "-cpu": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			out = append(out, a)
			if valued[a] && i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	return out
}
