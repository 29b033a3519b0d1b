package main_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var consoleURL = regexp.MustCompile(`txbox console: serving.* url=(\S+)`)

// startConsole runs txbox console in the background with env added to the environment.
func startConsole(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startProc(t, env, consoleURL, append([]string{"console"}, args...)...)
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
	base := p.waitAddr(t, "console")
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
	if c := p.stop(t); c != 0 {
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
	u := ro.waitAddr(t, "console")
	if code := post(t, u+"api/v1/dead/drop", sel, jsonType); code != 403 {
		t.Errorf("read-only console: drop answered %d, want 403", code)
	}
}
