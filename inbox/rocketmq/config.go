package rocketmq

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/rmqclient"
	"github.com/txbox/txbox/rmqwire"
)

// Config configures a Consumer. NameServers, Group and Topic are required; every other field documents its
// default, which New fills in for the zero value.
type Config struct {
	// NameServers are the name server addresses as literal IP:port, e.g. "127.0.0.1:9876". Required. Host names
	// are rejected: rocketmq-client-go does not resolve them.
	NameServers []string
	// Group is the consumer group, at most 255 characters of [A-Za-z0-9_%|-]. Required. Keep it stable: the
	// broker stores the group's offsets, and the inbox keys are scoped by the inbox's Consumer name, which
	// should name the same logical consumer.
	Group string
	// Topic is the topic to consume, at most 127 characters of [A-Za-z0-9_%|-] with the namespace's "ns%"
	// (rmqwire.CheckTopic). Required. It must exist (with a route) before New: the client's Start fails
	// otherwise and a consumer cannot be restarted.
	Topic string
	// Tags is the subscription expression: "*" or tags joined by "||" ("created || paid"). Default "*".
	Tags string
	// InstanceName tells this client apart from the other clients of the process: rocketmq-client-go shares one
	// connection client between all clients with the same IP and instance name, and two consumers of one group
	// in one process must not share it. Default: unique per Consumer, "txbox-inbox-<pid>-<n>-<random>".
	InstanceName string
	// Credentials authenticate to an ACL-enabled cluster. Default: none.
	Credentials Credentials
	// TLS encrypts the connections to the name servers and brokers. Default false. rocketmq-client-go keeps
	// this switch in process-global state and does not verify the server's certificate (it encrypts, it does
	// not authenticate the broker): see relay/rocketmq's package documentation. New fails with ErrInvalidConfig
	// while another txbox RocketMQ client of the process runs with the other setting.
	TLS bool
	// Namespace, when set, prefixes the topic and group the broker sees ("ns%topic"). Default: none.
	Namespace string

	// KeyProperty is the user property holding the business key. Default "TXBOX_KEY", which relay/rocketmq
	// writes (package rmqwire); set it for messages of other producers that put the key in a property of their
	// own.
	KeyProperty string
	// RequireKeyProperty makes a message without KeyProperty unusable (parked, see the package documentation).
	// Default false: such a message's business key is the first space-separated entry of its KEYS, which is
	// what producers that are not txbox set (the client's WithKeys). Require the property when several
	// producers share the topic and only txbox's keys are business keys.
	RequireKeyProperty bool

	// Orderly consumes each queue in order, one message at a time (RocketMQ orderly consumption; pair it with a
	// ShardingKey on the producer side). A failed message suspends its queue for SuspendTime and is retried in
	// place — not spun on — until it succeeds or the inbox parks it after its MaxAttempts failures. Default false:
	// concurrent consumption, where a failed message goes back to the broker and returns after a delay.
	Orderly bool
	// SuspendTime is how long an orderly queue waits before retrying a failed message. Between 10ms and 1m.
	// Default 1s. Ignored unless Orderly.
	SuspendTime time.Duration
	// FromFirstOffset makes a group that has no committed offset yet start at the oldest stored message instead
	// of the newest (the client's default, which skips what was sent before the group first started). It does
	// not affect a group that has consumed before. Default false.
	FromFirstOffset bool
	// ConsumeTimeout is the client's consume timeout: a concurrently consumed message still running after it is
	// sent back to the broker, which delivers it again while the first handler still runs. It must exceed the
	// inbox's HandlerTimeout by at least HandlerMargin, so that Process has given up (and rolled back) before
	// that happens. Default 15m.
	ConsumeTimeout time.Duration
	// MaxReconsumeTimes is how often the broker redelivers a failed message of a concurrent consumer before
	// moving it to %DLQ%<group>. It must be at least the inbox's MaxAttempts, so that the inbox parks a poison
	// message (with payload, headers and last error, replayable) before the broker gives up on it. Default 16
	// (RocketMQ's). Ignored when Orderly (the inbox's MaxAttempts bounds retries there).
	MaxReconsumeTimes int
	// Goroutines is how many messages are handled at once (per topic). Default 20; 1 to 1000.
	Goroutines int
	// BatchSize is how many messages one callback of the client receives at most (its
	// ConsumeMessageBatchMaxSize). Above 1, the messages of a callback go through inbox.ProcessBatch: one
	// transaction and one commit for all of them, each handler under a savepoint of its own, so that a failing
	// message rolls back only its own writes. The client acknowledges a callback as a whole, though: when one
	// message of it fails, every message of it is sent back, and those that committed come back as Duplicates
	// (the handler does not run again). Batches form only from messages waiting in the client's queue, so they
	// grow with the backlog. Not with Orderly (a batch goes on past a failed message), an Interceptor (it wraps
	// one message's Process) or NewEffects. Default 1; at most 64 (see inbox.ProcessBatch).
	BatchSize int

	// InboxKey maps a message to the key the inbox records (Message.Key; the business key the message carries
	// stays in Message.MessageKey). It runs for messages that carry a business key, before Interceptor and
	// Handler see them. Default: the message's business key. A service that deduplicates on what a message is
	// about rather than on the message maps several keys to one: the example's payment service records
	// "<order>/payment", one payment per order, whichever message asked for it. A key the inbox rejects (empty,
	// too long) makes the message unusable (see the package documentation).
	InboxKey func(m *Message) string
	// Interceptor, if set, wraps the handling of every message that has a business key. next runs
	// Inbox.Process with the Handler and returns its result; pass it ctx or a context derived from it (ctx ends
	// when Shutdown gives up waiting). What Interceptor returns decides the acknowledgement exactly as
	// Process's result would: a nil error with Processed, Duplicate or Parked acknowledges; an error sends the
	// message back for redelivery (ConsumeRetryLater, or in orderly mode a suspended queue), and so does a nil
	// error with any other result (Failed, the zero Result); an error matching inbox.ErrInvalidDelivery or
	// inbox.ErrFingerprintMismatch, as next returns for an unusable message, parks it. An Interceptor that
	// does not call next decides alone: the Handler does not run and the inbox records nothing. A panic in it
	// is recovered and counts as an error. Use it to measure, to add context, or to inject faults in tests and
	// demos (a lost ACK is: call next, then return an error). Default: none.
	Interceptor func(ctx context.Context, m *Message, next func(context.Context) (inbox.Result, error)) (inbox.Result, error)
	// OnOutcome, if set, is called once for every message the consumer handles, after its fate was decided
	// and before the client is told, from the consumer's goroutine: it must be quick and must not panic.
	// Messages held while Shutdown runs are not handled and not reported (they go to the group's next
	// consumer). Default: none.
	OnOutcome func(Outcome)

	// Logger receives the consumer's warnings (failed and parked messages; never payloads) and debug traces,
	// and rocketmq-client-go's own records at ClientLogLevel and above. Default slog.Default().
	Logger *slog.Logger
	// ClientLogLevel is the lowest level of rocketmq-client-go's own records that reach Logger. The client's
	// logger is process-global: New installs Logger and this level for every RocketMQ client in the process,
	// and the last New wins. Default slog.LevelWarn.
	ClientLogLevel slog.Leveler
}

// Credentials are an access key pair for an ACL-enabled cluster; SecurityToken is optional (STS).
type Credentials struct {
	AccessKey     string
	SecretKey     string
	SecurityToken string
}

// Defaults filled in by New.
const (
	DefaultTags              = "*"
	DefaultSuspendTime       = time.Second
	DefaultConsumeTimeout    = 15 * time.Minute
	DefaultMaxReconsumeTimes = 16
	DefaultGoroutines        = 20
	DefaultBatchSize         = 1
	// MaxBatchSize is the largest BatchSize accepted.
	MaxBatchSize = 64
	// HandlerMargin is the least ConsumeTimeout must exceed the inbox's HandlerTimeout by: Process counts a
	// failure in a transaction of its own after the handler's deadline (up to 10s, plus 2s per MiB of a message
	// it parks: 18s for a 4 MiB payload; raise ConsumeTimeout further for larger MaxPayloadBytes).
	HandlerMargin = 30 * time.Second
)

func (c Config) withDefaults(ic inbox.Config) (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if err := rmqclient.CheckNameServers(c.NameServers); err != nil {
		return bad("NameServers%v", err)
	}
	if c.Group == "" {
		return bad("Group is required")
	}
	if err := rmqclient.CheckName(c.Group); err != nil {
		return bad("Group %v", err)
	}
	if c.Topic == "" {
		return bad("Topic is required")
	}
	if c.Namespace != "" {
		if err := rmqclient.CheckName(c.Namespace); err != nil {
			return bad("Namespace %v", err)
		}
	}
	topic := c.Topic
	if c.Namespace != "" {
		topic = c.Namespace + "%" + c.Topic
	}
	if err := rmqwire.CheckTopic(topic); err != nil {
		return bad("Topic: %v", err)
	}
	if c.Tags == "" {
		c.Tags = DefaultTags
	}
	if c.InstanceName == "" {
		c.InstanceName = rmqclient.UniqueInstanceName("txbox-inbox")
	}
	if err := rmqclient.CheckInstanceName(c.InstanceName); err != nil {
		return bad("InstanceName %v", err)
	}
	if err := rmqclient.CheckCredentials(c.Credentials.AccessKey, c.Credentials.SecretKey, c.Credentials.SecurityToken); err != nil {
		return bad("Credentials %v", err)
	}
	if c.KeyProperty == "" {
		c.KeyProperty = rmqwire.PropKey
	}
	switch {
	case c.SuspendTime == 0:
		c.SuspendTime = DefaultSuspendTime
	case c.SuspendTime < 10*time.Millisecond || c.SuspendTime > time.Minute:
		return bad("SuspendTime must be between 10ms and 1m, got %s", c.SuspendTime)
	}
	if c.ConsumeTimeout == 0 {
		c.ConsumeTimeout = DefaultConsumeTimeout
	}
	if c.ConsumeTimeout < ic.HandlerTimeout+HandlerMargin {
		return bad("ConsumeTimeout (%s) must exceed the inbox's HandlerTimeout (%s) by at least %s, or the broker "+
			"redelivers messages whose handler still runs", c.ConsumeTimeout, ic.HandlerTimeout, HandlerMargin)
	}
	switch {
	case c.MaxReconsumeTimes == 0:
		c.MaxReconsumeTimes = DefaultMaxReconsumeTimes
	case c.MaxReconsumeTimes < 1 || c.MaxReconsumeTimes > 10000:
		return bad("MaxReconsumeTimes must be between 1 and 10000, got %d", c.MaxReconsumeTimes)
	}
	if !c.Orderly && c.MaxReconsumeTimes < ic.MaxAttempts {
		return bad("MaxReconsumeTimes (%d) is below the inbox's MaxAttempts (%d): the broker would move a poison "+
			"message to its %%DLQ%% before the inbox parks it", c.MaxReconsumeTimes, ic.MaxAttempts)
	}
	switch {
	case c.Goroutines == 0:
		c.Goroutines = DefaultGoroutines
	case c.Goroutines < 1 || c.Goroutines > 1000:
		return bad("Goroutines must be between 1 and 1000, got %d", c.Goroutines)
	}
	switch {
	case c.BatchSize == 0:
		c.BatchSize = DefaultBatchSize
	case c.BatchSize < 1 || c.BatchSize > MaxBatchSize:
		return bad("BatchSize must be between 1 and %d, got %d", MaxBatchSize, c.BatchSize)
	case c.BatchSize > 1 && c.Orderly:
		return bad("BatchSize above 1 cannot be combined with Orderly (a batch goes on past a failed message)")
	case c.BatchSize > 1 && c.Interceptor != nil:
		return bad("BatchSize above 1 cannot be combined with an Interceptor (it wraps one message's Process)")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ClientLogLevel == nil {
		c.ClientLogLevel = slog.LevelWarn
	}
	return c, nil
}
