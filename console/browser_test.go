package console_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/rmqquery"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
)

// chromium returns Debian's Chromium (TXBOX_CHROMIUM, or chromium on PATH; scripts/chromium.sh installs it).
// Without one the test is skipped, or fails under CI.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("TXBOX_CHROMIUM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	msg := "no Chromium: install it with scripts/chromium.sh install (Debian's package), or set TXBOX_CHROMIUM"
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set and %s", msg)
	}
	t.Skip(msg)
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a context for chromedp actions.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox, // the test runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser) // closes the browser and waits for it to exit
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return bctx
}

// page drives one browser tab, failing the test at the first error.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (p page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("browser: %v", err)
	}
}

// text returns the text of the element the CSS selector finds (waiting for it).
func (p page) text(sel string) string {
	p.t.Helper()
	s, err := chromedp.Run(p.ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return s
}

// shot saves a full-page PNG screenshot as a test artifact (go test -artifacts -outputdir DIR keeps them).
func (p page) shot(name string) {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("browser: screenshot: %v", err)
	}
	path := filepath.Join(p.t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("info: screenshot %s", path)
}

// TestBrowser drives the console in a real headless Chromium over a demo-like run (an order's messages
// through two databases and the broker, one dead letter): it loads the overview, searches the order's key,
// logs in, requeues the dead letter through the confirmation page, and checks what each page shows and what
// the database holds afterwards.
func TestBrowser(t *testing.T) {
	ctx := browser(t) // first: fail or skip before any setup when there is no browser
	b := rmqtest.Get(t)
	tg := testdb.Targets[0]
	f := runFlow(t, tg, b)
	dead := bury(t, f.orders, outbox.Message{Topic: "order-refunded", Key: f.order + "/refunded", Payload: []byte(`{"amount":1250}`)})
	// A key with markup and terminal escapes, parked: the page must show it as text.
	hostile := f.order + "/<script>alert(1)</script>\x1b[31m"
	park(t, f.payments, f.group, inbox.Delivery{Key: hostile, Topic: f.topic, Payload: []byte("x")})
	e := newEnv(t, console.Config{Token: token, Broker: &rmqquery.Client{NameServers: b.NameServers()}},
		map[string]*testdb.DB{"orders": f.orders, "payments": f.payments}, "orders", "payments")
	base := e.srv.URL

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	p := page{t: t, ctx: ctx}

	// Overview: both databases, the dead letters counted.
	p.do(chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#db-payments")))
	overview := p.text("main")
	p.shot("1-overview.png")

	// Trace: the search box in the header, the order's key.
	p.do(chromedp.SendKeys(css(`header input[name="key"]`), f.order), chromedp.Submit(css(`header input[name="key"]`)),
		chromedp.WaitVisible(css("#timeline")))
	timeline := p.text("#timeline")
	p.shot("2-trace.png")

	// Inbox keys of the payment service's consumer.
	p.do(chromedp.Navigate(base+"/keys?db=payments"), chromedp.WaitVisible(css("#keys")))
	keys := p.text("#keys")
	p.shot("3-inbox-keys.png")

	// Dead letters: log in from the page's hint, come back, select, requeue, confirm.
	p.do(chromedp.Navigate(base+"/dead?db=orders&box=outbox"), chromedp.Click(css("main .hint a")),
		chromedp.WaitVisible(css("#token")), chromedp.SendKeys(css("#token"), token), chromedp.Submit(css("#token")),
		chromedp.WaitVisible(css("#dead")),
		chromedp.Click(css(`input[name="id"][value="`+strconv.FormatInt(dead[0], 10)+`"]`)))
	p.shot("4-dead-letters.png")
	p.do(chromedp.Click(css(`button[value="requeue"]`)), chromedp.WaitVisible(css("#confirm")))
	confirm := p.text("main")
	p.shot("5-confirm.png")
	p.do(chromedp.Click(css("#confirm-button")), chromedp.WaitVisible(css("#result")))
	result := p.text("#result")
	p.shot("6-requeued.png")
	p.do(chromedp.Navigate(base+"/dead?db=orders&box=outbox"), chromedp.WaitVisible(css("#empty")))
	empty := p.text("#empty")

	// The requeued message is back in the outbox, waiting for a relay: the trace says so.
	p.do(chromedp.Navigate(base+"/trace?exact=1&key="+f.order+"/refunded"), chromedp.WaitVisible(css("#timeline")))
	traced := p.text("#timeline")
	p.shot("7-trace-requeued.png")
	t.Logf("info: screenshots in %s", t.ArtifactDir())

	for _, want := range []string{"orders", "payments", "order-refunded", f.group} {
		if !strings.Contains(overview, want) {
			t.Errorf("overview lacks %q:\n%s", want, overview)
		}
	}
	for _, want := range []string{"enqueued", "stored", "published", "processed", "parked", f.order + "/created",
		f.order + "/refunded", "dead-lettered", "broker", f.order + `/<script>alert(1)</script>\x1b[31m`} {
		if !strings.Contains(timeline, want) {
			t.Errorf("trace timeline lacks %q:\n%s", want, timeline)
		}
	}
	if !strings.Contains(keys, f.order+"/created") || !strings.Contains(keys, "parked") {
		t.Errorf("inbox keys page:\n%s", keys)
	}
	if !strings.Contains(confirm, "requeue 1 outbox dead letter(s) in orders") || !strings.Contains(confirm, f.order+"/refunded") {
		t.Errorf("confirmation page:\n%s", confirm)
	}
	if strings.TrimSpace(result) != "Requeue: 1 of 1 outbox dead letter(s) in orders." {
		t.Errorf("result = %q", result)
	}
	if !strings.Contains(empty, "No outbox dead letters match in orders") {
		t.Errorf("dead letters after the requeue: %q", empty)
	}
	if !strings.Contains(traced, "waiting") || strings.Contains(traced, "dead-lettered") {
		t.Errorf("trace of the requeued key:\n%s", traced)
	}
	if n := count(t, f.orders, "SELECT COUNT(*) FROM txbox_outbox WHERE msg_key = ? AND attempts = 0", f.order+"/refunded"); n != 1 {
		t.Errorf("requeued message in the outbox %d times, want 1", n)
	}
	if n := count(t, f.orders, "SELECT COUNT(*) FROM txbox_outbox_dead"); n != 0 {
		t.Errorf("%d outbox dead letters left, want 0", n)
	}
}
