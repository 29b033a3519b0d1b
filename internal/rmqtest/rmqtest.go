package rmqtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/internal/rmqlog"
	"github.com/txbox/txbox/internal/testdb"
)

// Env names the variables this package reads.
const (
	EnvNamesrv = "TXBOX_ROCKETMQ_NAMESRV"
	EnvBroker  = "TXBOX_ROCKETMQ_BROKER"
	EnvAdmin   = "TXBOX_ROCKETMQ_ADMIN"
)

const howToStart = "start the broker with `make services` (or `scripts/rocketmq.sh start`) and export its " +
	"address with `eval \"$(scripts/services.sh env)\"`"

// Broker is the running broker a test talks to.
type Broker struct {
	// Namesrv is the name server address, e.g. "127.0.0.1:9876".
	Namesrv string
	// Addr is the broker's address, e.g. "127.0.0.1:10911".
	Addr string
}

// Get returns the broker from the environment, skipping the test (or failing it under CI) when it is not set.
func Get(t testing.TB) Broker {
	t.Helper()
	// The admin client logs every topic creation at Info on stderr unless the client's logger is replaced.
	quietOnce.Do(func() { rmqlog.Install(slog.Default(), rmqlog.DefaultLevel) })
	b := Broker{Namesrv: os.Getenv(EnvNamesrv), Addr: os.Getenv(EnvBroker)}
	if b.Namesrv == "" || b.Addr == "" {
		msg := fmt.Sprintf("%s and %s must be set: %s", EnvNamesrv, EnvBroker, howToStart)
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and %s", msg)
		}
		t.Skip(msg)
	}
	return b
}

var quietOnce sync.Once

// NameServers is Namesrv as the client's option type.
func (b Broker) NameServers() []string { return []string{b.Namesrv} }

// Name returns a fresh name usable as a topic or group: prefix, the test's name reduced to the characters
// RocketMQ accepts ([A-Za-z0-9_-]), and random hex.
func Name(t testing.TB, prefix string) string {
	var sb strings.Builder
	for _, r := range t.Name() {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	name := sb.String()
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + "_" + name + "_" + hex.EncodeToString(b)
}

// adminMu serialises admin clients: each one is a full client with its own goroutines, and tests create topics
// rarely enough that one at a time costs nothing.
var adminMu sync.Mutex

// CreateTopic creates topic with the given number of read and write queues on the broker and waits until the
// name server returns a route with that many queues (the client's Start fails on a topic without a route).
func (b Broker) CreateTopic(t testing.TB, topic string, queues int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := b.createTopic(ctx, topic, queues); err != nil {
		t.Fatalf("rmqtest: %v", err)
	}
}

func (b Broker) createTopic(ctx context.Context, topic string, queues int) error {
	adminMu.Lock()
	defer adminMu.Unlock()
	// The admin client sends CreateTopic and ignores the broker's answer code, so success is judged only by the
	// route. Each poll uses a new admin client because the client caches the first route it sees.
	create := func() error {
		a, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver(b.NameServers())))
		if err != nil {
			return fmt.Errorf("new admin client: %w", err)
		}
		defer a.Close()
		return a.CreateTopic(ctx, admin.WithTopicCreate(topic), admin.WithBrokerAddrCreate(b.Addr),
			admin.WithReadQueueNums(queues), admin.WithWriteQueueNums(queues))
	}
	routed := func() (int, error) {
		a, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver(b.NameServers())))
		if err != nil {
			return 0, fmt.Errorf("new admin client: %w", err)
		}
		defer a.Close()
		mqs, err := a.FetchPublishMessageQueues(ctx, topic)
		return len(mqs), err
	}
	if err := create(); err != nil {
		return fmt.Errorf("create topic %s on %s: %w", topic, b.Addr, err)
	}
	var last error
	for wait := 20 * time.Millisecond; ; wait = min(wait*2, 500*time.Millisecond) {
		n, err := routed()
		if err == nil && n == queues {
			return nil
		}
		last = err
		if err == nil {
			last = fmt.Errorf("route has %d queues, want %d", n, queues)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s has no route on %s: %w (last: %v)", topic, b.Namesrv, ctx.Err(), last)
		case <-time.After(wait):
		}
	}
}

// Topic creates a fresh topic with the given number of queues and returns its name.
func (b Broker) Topic(t testing.TB, queues int) string {
	t.Helper()
	topic := Name(t, "T")
	b.CreateTopic(t, topic, queues)
	return topic
}

// Group returns a fresh consumer group name and creates its retry topic %RETRY%<group> with one queue, so the
// first redelivery arrives after the broker's delay level (1 s here) instead of after the ~20 s a retry topic
// created on demand takes to become consumable.
func (b Broker) Group(t testing.TB) string {
	t.Helper()
	g := Name(t, "G")
	b.CreateTopic(t, "%RETRY%"+g, 1)
	return g
}

// AdminPath returns the mqadmin executable, skipping the test when TXBOX_ROCKETMQ_ADMIN is unset (failing it
// under CI).
func AdminPath(t testing.TB) string {
	t.Helper()
	p := os.Getenv(EnvAdmin)
	if p == "" {
		msg := fmt.Sprintf("%s is not set: %s", EnvAdmin, howToStart)
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set and %s", msg)
		}
		t.Skip(msg)
	}
	return p
}

// Admin runs the broker's admin tool (MQAdminStartup) with args and returns its combined output. The tool exits 0
// even when a command fails, so callers must check the output.
func Admin(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, AdminPath(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rmqtest: mqadmin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// LeakOptions are the goroutines of rocketmq-client-go that outlive Shutdown (apache/rocketmq-client-go#1147),
// matched by function name so that goroutines of txbox's own code are still reported:
//
//   - the client's background loops (Start.func1.N) sleep up to 10 s before they first look at their done channel;
//   - a push consumer's expiry sweep (pushConsumer.Start.func1.2) first sleeps ConsumeTimeout (15 min by default)
//     and its lock renewal (func1.3) 1 s;
//   - a push consumer's statistics samplers (statsItemSet.init.funcN) sleep for days and never stop;
//   - a pull request in flight (pushConsumer.pullMessage) waits for the broker's long-poll answer (up to 30 s);
//   - an orderly queue's consume loop polls an empty queue for up to 5 s (processQueue.takeMessages), even after
//     Shutdown dropped it (apache/rocketmq-client-go#628);
//   - a rebalance or heartbeat started by Start (rmqClient.RebalanceImmediately,
//     rmqClient.SendHeartbeatToAllBrokerWithLock, defaultConsumer.doBalance) finishes its broker round trip after
//     a quick Shutdown;
//   - the client's package-level cache janitor (go-cache) runs for the life of the process;
//   - a connection reader (remotingClient.connect.func1) whose connection was opened by a background loop while
//     the client was shutting down stays until the broker closes the idle connection.
func LeakOptions() []testdb.LeakOption {
	const (
		internal = "github.com/apache/rocketmq-client-go/v2/internal"
		consumer = "github.com/apache/rocketmq-client-go/v2/consumer"
	)
	var opts []testdb.LeakOption
	for i := 1; i <= 6; i++ {
		opts = append(opts,
			testdb.IgnoreAnyFunction(fmt.Sprintf("%s.(*rmqClient).Start.func1.%d", internal, i)),
			testdb.IgnoreAnyFunction(fmt.Sprintf("%s.(*statsItemSet).init.func%d", consumer, i)))
	}
	opts = append(opts,
		testdb.IgnoreAnyFunction(internal+"/remote.(*remotingClient).connect.func1"),
		testdb.IgnoreAnyFunction(consumer+".(*pushConsumer).pullMessage"),
		testdb.IgnoreAnyFunction(consumer+".(*processQueue).takeMessages"),
		testdb.IgnoreAnyFunction(internal+".(*rmqClient).RebalanceImmediately"),
		// A broker's "consumer ids changed" notice starts a rebalance in a goroutine of the client's own
		// (processCMD) that Shutdown does not wait for.
		testdb.IgnoreAnyFunction(internal+".(*rmqClient).RebalanceIfNotPaused"),
		testdb.IgnoreAnyFunction(internal+".(*rmqClient).SendHeartbeatToAllBrokerWithLock"),
		testdb.IgnoreAnyFunction(consumer+".(*defaultConsumer).doBalance"),
		testdb.IgnoreTopFunction("github.com/patrickmn/go-cache.(*janitor).Run"))
	for i := 1; i <= 3; i++ {
		opts = append(opts, testdb.IgnoreAnyFunction(fmt.Sprintf("%s.(*pushConsumer).Start.func1.%d", consumer, i)))
	}
	return opts
}
