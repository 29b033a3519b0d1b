package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
)

// limit is how long a mutation may take to be caught, build included.
const limit = 60 * time.Second

func main() {
	run := flag.String("run", "", "only the mutations whose name matches this regular expression")
	keep := flag.Bool("keep", false, "keep the worktree")
	flag.Parse()
	if os.Getenv("TXBOX_MYSQL_DSN") == "" || os.Getenv("TXBOX_POSTGRES_DSN") == "" {
		fail(errors.New(`the database variables are not set: eval "$(scripts/services.sh env)" first (make mutants does)`))
	}
	var filter *regexp.Regexp
	if *run != "" {
		filter = regexp.MustCompile(*run)
	}
	dir, err := os.MkdirTemp("", "txbox-mutants")
	if err != nil {
		fail(err)
	}
	wt := filepath.Join(dir, "repo")
	if out, err := exec.Command("git", "worktree", "add", "--detach", wt, "HEAD").CombinedOutput(); err != nil {
		fail(fmt.Errorf("git worktree add: %v\n%s", err, out))
	}
	defer func() {
		if *keep {
			fmt.Println("worktree kept in", wt)
			return
		}
		_ = exec.Command("git", "worktree", "remove", "--force", wt).Run()
		_ = os.RemoveAll(dir)
	}()

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MUTATION\tCAUGHT\tBY\tTIME")
	bad := 0
	for _, m := range mutations {
		if filter != nil && !filter.MatchString(m.name) {
			continue
		}
		fmt.Fprintf(os.Stderr, "mutants: %s ...\n", m.name)
		caught, by, took, err := try(wt, m)
		switch {
		case err != nil:
			bad++
			fmt.Fprintf(tw, "%s\tERROR\t%v\t\n", m.name, err)
		case !caught:
			bad++
			fmt.Fprintf(tw, "%s\tNO\t(survived)\t%s\n", m.name, took.Round(time.Second))
		case took >= limit:
			bad++
			fmt.Fprintf(tw, "%s\tyes, too slowly\t%s\t%s\n", m.name, by, took.Round(time.Second))
		default:
			fmt.Fprintf(tw, "%s\tyes\t%s\t%s\n", m.name, by, took.Round(100*time.Millisecond))
		}
	}
	_ = tw.Flush()
	if bad > 0 {
		fail(fmt.Errorf("%d mutation(s) not caught within %s", bad, limit))
	}
}

// try applies m in the worktree, runs its tests and restores the file.
func try(wt string, m mutation) (caught bool, by string, took time.Duration, err error) {
	path := filepath.Join(wt, m.file)
	orig, err := os.ReadFile(path)
	if err != nil {
		return false, "", 0, err
	}
	if n := bytes.Count(orig, []byte(m.from)); n != 1 {
		return false, "", 0, fmt.Errorf("%s: the text to change occurs %d times (want once): %q", m.file, n, m.from)
	}
	if err := os.WriteFile(path, bytes.Replace(orig, []byte(m.from), []byte(m.to), 1), 0o644); err != nil {
		return false, "", 0, err
	}
	defer func() { _ = os.WriteFile(path, orig, 0o644) }()

	ctx, cancel := context.WithTimeout(context.Background(), 3*limit)
	defer cancel()
	args := []string{"test", "-count=1", "-failfast", "-run", m.tests, "./" + m.pkg}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = wt
	cmd.Env = append(os.Environ(), "CI=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took = time.Since(start)
	if err == nil {
		return false, "", took, nil
	}
	if ctx.Err() != nil {
		return false, "", took, fmt.Errorf("no verdict within %s", 3*limit)
	}
	if bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")) {
		return false, "", took, fmt.Errorf("the mutation does not build:\n%s", out)
	}
	return true, firstFailure(out), took, nil
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

// firstFailure names the innermost failed test of the first failure.
func firstFailure(out []byte) string {
	var last string
	for _, m := range failLine.FindAllSubmatch(out, -1) {
		name := string(m[1])
		if last == "" || strings.HasPrefix(name, last) {
			last = name
		} else {
			break
		}
	}
	if last == "" {
		return "(a failure without a test name)"
	}
	return last
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mutants:", err)
	os.Exit(1)
}
