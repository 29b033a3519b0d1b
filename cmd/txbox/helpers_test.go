package main_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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

	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
)

// proc is a txbox process running in the background (the relay, the console).
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	logs   strings.Builder
	addrRE *regexp.Regexp
	addr   chan string // what addrRE's first group matched in the log: the address it serves on
	done   chan struct{}
	code   int
}

var addrRE = regexp.MustCompile(`serving /metrics.* addr=(\S+)`)

// start runs txbox in the background against db; the process is killed when the test ends if still running.
func start(t *testing.T, db *testdb.DB, args ...string) *proc {
	t.Helper()
	return startProc(t, []string{"TXBOX_DIALECT=" + db.Dialect.Name(), "TXBOX_DSN=" + db.DSN}, addrRE, args...)
}

// startProc runs txbox in the background with env added to the environment, watching its log for addrRE.
func startProc(t *testing.T, env []string, addrRE *regexp.Regexp, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(txboxBin, args...), addrRE: addrRE, addr: make(chan string, 1), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start txbox %v: %v", args, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			if m := p.addrRE.FindStringSubmatch(line); m != nil {
				select {
				case p.addr <- m[1]:
				default:
				}
			}
		}
		err := p.cmd.Wait() // after stderr is read to the end
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
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

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// metricsAddr waits for the metrics server's address.
func (p *proc) metricsAddr(t *testing.T) string {
	t.Helper()
	return p.waitAddr(t, "metrics")
}

// waitAddr waits for the address the process logs that it serves what on.
func (p *proc) waitAddr(t *testing.T, what string) string {
	t.Helper()
	select {
	case a := <-p.addr:
		return a
	case <-p.done:
		t.Fatalf("txbox exited with %d before serving %s:\n%s", p.code, what, p.log())
	case <-time.After(time.Minute):
		t.Fatalf("no %s address logged within a minute:\n%s", what, p.log())
	}
	return ""
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("txbox did not exit within a minute of SIGTERM:\n%s", p.log())
	}
	return p.code
}

// waitFor polls cond until it reports true, failing the test with its last description at the deadline.
func waitFor(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 250*time.Millisecond) {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, desc)
		}
		time.Sleep(wait) // polling interval, not a wait for work
	}
}

// get fetches url and returns the status code and body (code 0 when the request failed).
func get(url string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// enqueue writes msgs to db's outbox in one transaction.
func enqueue(t *testing.T, db *testdb.DB, msgs ...outbox.Message) {
	t.Helper()
	ob, err := outbox.New(outbox.Config{Dialect: db.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Enqueue(context.Background(), db.DB, msgs...); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

// poisonPublisher fails every record permanently.
type poisonPublisher struct{}

func (poisonPublisher) Publish(context.Context, outbox.Record) error {
	return fmt.Errorf("%w: broker says no", relay.ErrPermanent)
}

// bury enqueues msgs and moves them to the outbox's dead-letter table through a relay whose publisher always
// fails, as a poisoned row gets there in production.
func bury(t *testing.T, db *testdb.DB, msgs ...outbox.Message) {
	t.Helper()
	enqueue(t, db, msgs...)
	r, err := relay.New(db.DB, relay.Config{Dialect: db.Dialect, Publisher: poisonPublisher{}, MaxAttempts: 1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Drain(context.Background()); err != nil {
		t.Fatalf("drain into the dead-letter table: %v", err)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM txbox_outbox"); n != 0 {
		t.Fatalf("%d rows left in the outbox after burying", n)
	}
}

// park parks one inbox message for consumer, the way a handler that keeps failing does.
func park(t *testing.T, db *testdb.DB, consumer string, d inbox.Delivery) {
	t.Helper()
	ib := newInbox(t, db, consumer, inbox.Config{MaxAttempts: 1})
	res, err := ib.Process(context.Background(), d, func(context.Context, *sqlx.Tx) error { return errors.New("poison") })
	if res != inbox.Parked || err != nil {
		t.Fatalf("park %q: %v, %v", d.Key, res, err)
	}
}

// process records keys for consumer with a handler that succeeds.
func process(t *testing.T, db *testdb.DB, consumer string, keys ...string) {
	t.Helper()
	ib := newInbox(t, db, consumer, inbox.Config{})
	for _, k := range keys {
		res, err := ib.Process(context.Background(), inbox.Delivery{Key: k, Payload: []byte(k)},
			func(context.Context, *sqlx.Tx) error { return nil })
		if res != inbox.Processed || err != nil {
			t.Fatalf("process %q: %v, %v", k, res, err)
		}
	}
}

func newInbox(t *testing.T, db *testdb.DB, consumer string, cfg inbox.Config) *inbox.Inbox {
	t.Helper()
	cfg.Dialect, cfg.Consumer = db.Dialect, consumer
	ib, err := inbox.New(db.DB, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ib
}

// count runs a COUNT(*) query written with '?' placeholders.
func count(t *testing.T, db *testdb.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), db.Rebind(q), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func itoa(n int64) string { return fmt.Sprint(n) }
