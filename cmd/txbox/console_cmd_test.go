package main_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// consoleProc is a txbox console running in the background.
type consoleProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
	url  chan string
	done chan struct{}
}

var consoleURL = regexp.MustCompile(`txbox console: serving.* url=(\S+)`)

func startConsole(t *testing.T, env []string, args ...string) *consoleProc {
	t.Helper()
	p := &consoleProc{cmd: exec.Command(txboxBin, append([]string{"console"}, args...)...), url: make(chan string, 1),
		done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := consoleURL.FindStringSubmatch(sc.Text()); m != nil {
				p.url <- m[1]
			}
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *consoleProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *consoleProc) waitURL(t *testing.T) string {
	t.Helper()
	select {
	case u := <-p.url:
		return u
	case <-p.done:
		t.Fatalf("txbox console exited (%v) before serving:\n%s", p.cmd.ProcessState, p.log())
	case <-time.After(time.Minute):
		t.Fatalf("txbox console did not serve within a minute:\n%s", p.log())
	}
	return ""
}

func post(t *testing.T, url, body string, hdr map[string]string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestConsoleCommand: txbox console serves the pages and the API over a databases file on 127.0.0.1, refuses
// changes without the token, never logs the token or a DSN, and stops on SIGTERM with status 0.
func TestConsoleCommand(t *testing.T) {
	file, env := twoServices(t)
	const tok = "cli-test-token-0123456789"
	p := startConsole(t, append(env, "TXBOX_CONSOLE_TOKEN="+tok), "--databases", file, "--addr", "127.0.0.1:0")
	base := p.waitURL(t)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("serving %s, want loopback", base)
	}
	code, body := get(base)
	if code != 200 || !strings.Contains(body, "orders") || !strings.Contains(body, "payments") {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	if code, body := get(base + "api/v1/trace?key=o-1"); code != 200 || !strings.Contains(body, `"kind": "published"`) {
		t.Fatalf("GET trace: %d\n%s", code, body)
	}
	sel := `{"db": "payments", "box": "inbox", "all": true}`
	jsonType := map[string]string{"Content-Type": "application/json"}
	if code := post(t, base+"api/v1/dead/drop", sel, jsonType); code != 401 {
		t.Errorf("drop without the token: %d, want 401", code)
	}
	jsonType["Authorization"] = "Bearer " + tok
	if code := post(t, base+"api/v1/dead/drop", sel, jsonType); code != 200 {
		t.Errorf("drop with the token: %d, want 200", code)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatal("txbox console did not stop within a minute of SIGTERM")
	}
	if c := p.cmd.ProcessState.ExitCode(); c != 0 {
		t.Errorf("exit status %d after SIGTERM:\n%s", c, p.log())
	}
	logs := p.log()
	if strings.Contains(logs, tok) || strings.Contains(logs, strings.TrimPrefix(env[0], "ORDERS_DSN=")) ||
		strings.Contains(logs, strings.TrimPrefix(env[1], "PAYMENTS_DSN=")) {
		t.Errorf("the log holds the token or a DSN:\n%s", logs)
	}
	if !strings.Contains(logs, "txbox console: stopped") {
		t.Errorf("no clean stop in the log:\n%s", logs)
	}

	// No token: refused before listening (status 2), unless read-only.
	if r := run(t, nil, env, "console", "--databases", file, "--addr", "127.0.0.1:0"); r.code != 2 ||
		!strings.Contains(r.stderr, "TXBOX_CONSOLE_TOKEN") {
		t.Errorf("console without a token: code %d\n%s", r.code, r.stderr)
	}
	ro := startConsole(t, env, "--databases", file, "--addr", "127.0.0.1:0", "--read-only")
	u := ro.waitURL(t)
	if code := post(t, u+"api/v1/dead/drop", sel, jsonType); code != 403 {
		t.Errorf("read-only console: drop answered %d, want 403", code)
	}
}
