package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
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

// pkgOutput is what one package printed: its own lines (outside tests) and each test's lines, and which
// tests failed.
type pkgOutput struct {
	own    []string
	tests  map[string][]string
	failed []string
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
		for _, pkg := range failed {
			fmt.Printf("gotest: retry %d of %d: %s failed only on data races inside rocketmq-client-go "+
				"(apache/rocketmq-client-go#1115) in %s; running it again\n", attempt+1, maxRetries, pkg,
				strings.Join(outputs[pkg].failed, ", "))
		}
		pkgs = append(append([]string(nil), flags...), failed...)
	}
}

// run runs go test -json with args, prints its output through a printer, and returns the failed packages
// with each package's whole output.
func run(args []string) (failed []string, outputs map[string]*pkgOutput, err error) {
	cmd := exec.Command("go", append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	outputs = map[string]*pkgOutput{}
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
		po := outputs[ev.Package]
		if po == nil {
			po = &pkgOutput{tests: map[string][]string{}}
			outputs[ev.Package] = po
		}
		switch {
		case ev.Output != "" && ev.Test == "":
			po.own = append(po.own, ev.Output)
		case ev.Output != "":
			po.tests[ev.Test] = append(po.tests[ev.Test], ev.Output)
		}
		if ev.Action == "fail" {
			if ev.Test == "" {
				failed = append(failed, ev.Package)
			} else {
				po.failed = append(po.failed, ev.Test)
			}
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
// accesses both happen in upstream code, or else why the failure counts. It reads the package's own lines and
// the lines of the tests that failed (a passing test's lines say nothing about the failure):
//
//   - every race report must be upstream's: an access happens where the first frame of its stack that is not
//     the runtime or the standard library's sync packages runs. txbox frames further down (txbox calling the
//     client's Shutdown, say) do not make the race txbox's: the memory belongs to the client;
//   - a failed test may print nothing of its own but race reports, the testing package's "race detected during
//     execution of test" and log records of the code under test (slog and the client's logger write lines that
//     start with a date). Any other file.go:line: message is an assertion (t.Error, t.Fatal) or a t.Log, which
//     cannot be told apart: it counts as a real failure. Tests that log on success use the prefix "info: ",
//     which is not counted, so that a race beside them can still be retried;
//   - a panic, a timeout or a package-level message (a leak check) counts as a real failure.
func classify(po *pkgOutput) string {
	if po == nil {
		return "no output"
	}
	races, own := 0, 0
	var real []string
	// strict: a line that is not known to be harmless counts (the package's own output, where nothing but
	// framing, races and log records is expected).
	scan := func(lines []string, where string, strict bool) {
		inRace, section := false, 0
		var accessors []string // the accessing function of each access section
		for _, l := range lines {
			t := strings.TrimSpace(l)
			switch {
			case t == "WARNING: DATA RACE":
				inRace, section, accessors = true, 0, nil
				races++
			case inRace && t == "==================":
				if !upstreamAccesses(accessors) {
					own++
				}
				inRace = false
			case inRace && strings.Contains(t, " at 0x") && strings.Contains(t, " by "):
				section++
				accessors = append(accessors, "")
			case inRace && strings.HasPrefix(t, "Goroutine "):
				section = 3 // creation stacks do not count: txbox starts the client's goroutines
			case inRace && section >= 1 && section <= 2 && accessors[section-1] == "" && isFunctionFrame(t) &&
				!isRuntimeFrame(t):
				accessors[section-1] = t
			case inRace:
			case isRealFailureLine(t, strict):
				real = append(real, where+": "+t)
			}
		}
	}
	scan(po.own, "package", true)
	for _, name := range po.failed {
		scan(po.tests[name], name, false)
	}
	switch {
	case own > 0:
		return fmt.Sprintf("%d data race(s) not inside rocketmq-client-go", own)
	case len(real) > 0:
		return "not only upstream data races: " + real[0]
	case races == 0:
		return "not a data race"
	}
	return ""
}

// isRealFailureLine reports a line (outside race reports) that a failure other than an upstream race printed.
func isRealFailureLine(t string, strict bool) bool {
	switch {
	case t == "", strings.HasPrefix(t, "=== "), strings.HasPrefix(t, "--- FAIL"), strings.HasPrefix(t, "--- PASS"),
		strings.HasPrefix(t, "--- SKIP"), t == "FAIL", t == "PASS", strings.HasPrefix(t, "FAIL\t"),
		strings.HasPrefix(t, "exit status "), strings.HasPrefix(t, "ok  \t"), logRecord.MatchString(t):
		return false
	case raceLine.MatchString(t):
		return false
	case strings.HasPrefix(t, "panic:"), strings.HasPrefix(t, "fatal error:"):
		return true
	}
	if m := testLine.FindStringSubmatch(t); m != nil {
		return !strings.HasPrefix(m[1], "info: ")
	}
	// Anything else the package printed outside tests (a leak report, a TestMain message) counts; inside a
	// failed test, other lines are the continuation of a message already judged, or log output.
	return strict
}

var (
	// testLine is a line written by t.Log/t.Error: "file_test.go:12: message".
	testLine = regexp.MustCompile(`^[\w./-]+\.go:\d+: (.*)$`)
	// raceLine is what the testing package reports for a test during which a race happened.
	raceLine = regexp.MustCompile(`^testing\.go:\d+: race detected during execution of test$`)
	// logRecord is a log record of the code under test: the standard logger's and slog's default formats.
	logRecord = regexp.MustCompile(`^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} `)
)

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
