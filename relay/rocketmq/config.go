package rocketmq

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/txbox/txbox/internal/rmqclient"
)

// Config configures a Publisher. Only NameServers is required; every other field documents its default, which
// New fills in for the zero value.
type Config struct {
	// NameServers are the name server addresses as literal IP:port, e.g. "127.0.0.1:9876". Required. Host names
	// such as "localhost:9876" are rejected: rocketmq-client-go does not resolve them and would fail at the
	// first send (and without any name server it would try an HTTP lookup service).
	NameServers []string
	// Group is the producer group, at most 255 characters of [A-Za-z0-9_%|-]. Default "txbox-relay".
	Group string
	// InstanceName tells this client apart from the other clients of the process: rocketmq-client-go shares one
	// connection client between all producers and consumers with the same client IP and instance name, so two
	// Publishers (or a Publisher and a consumer) must never share it. Default: unique per Publisher,
	// "txbox-relay-<pid>-<n>-<random>".
	InstanceName string
	// Credentials authenticate to an ACL-enabled cluster. Default: none.
	Credentials Credentials
	// TLS encrypts the connections to the name servers and brokers. Default false. rocketmq-client-go keeps
	// this switch in process-global state and does not verify the server's certificate (it encrypts, it does
	// not authenticate the broker): see the package documentation. New fails with ErrInvalidConfig while
	// another txbox RocketMQ client of the process runs with the other setting.
	TLS bool
	// Namespace, when set, prefixes the topic and group the broker sees ("ns%topic"), as RocketMQ namespaces
	// do. Default: none.
	Namespace string
	// SendTimeout bounds each send attempt (the client's send timeout is per attempt). Publish's ctx bounds the
	// whole call. Default 3s.
	SendTimeout time.Duration
	// Retries is how many more attempts the client makes after a failed one within one Publish, on the same
	// queue for messages with a ShardingKey. The relay retries a failed row anyway; client retries only make a
	// broker hiccup cheaper. Default 2; a negative value means none.
	Retries int
	// MaxMessageSize is the broker's maxMessageSize, the longest body it stores: Publish refuses a longer
	// payload with ErrInvalidMessage without sending it. Set it (and the same value in the Limits given to
	// outbox.Config.Check) when the broker's setting was changed. Default DefaultMaxMessageSize (4 MiB); at most
	// MaxMessageSizeLimit.
	MaxMessageSize int
	// MaxBatch is the most messages one send request carries. Concurrent Publish calls whose messages go to the
	// same queue are sent together (see the package documentation); nothing waits for a batch to fill. 1
	// disables batching. Between 1 and 1024. Default 32.
	MaxBatch int
	// Logger receives the publisher's warnings (sends the broker did not confirm as durable) and debug traces;
	// payloads are never logged. It also receives rocketmq-client-go's own log records (see ClientLogLevel).
	// Default slog.Default().
	Logger *slog.Logger
	// ClientLogLevel is the lowest level of rocketmq-client-go's own records that reach Logger. The client's
	// logger is process-global: New installs Logger and this level for every RocketMQ client in the process,
	// and the last New wins. Default slog.LevelWarn (the client logs every rebalance and heartbeat at Info).
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
	DefaultGroup       = "txbox-relay"
	DefaultSendTimeout = 3 * time.Second
	DefaultRetries     = 2
	DefaultMaxBatch    = 32
)

func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if err := rmqclient.CheckNameServers(c.NameServers); err != nil {
		return bad("NameServers%v", err)
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if err := rmqclient.CheckName(c.Group); err != nil {
		return bad("Group %v", err)
	}
	if c.Namespace != "" {
		if err := rmqclient.CheckName(c.Namespace); err != nil {
			return bad("Namespace %v", err)
		}
	}
	if c.InstanceName == "" {
		c.InstanceName = rmqclient.UniqueInstanceName("txbox-relay")
	}
	if err := rmqclient.CheckInstanceName(c.InstanceName); err != nil {
		return bad("InstanceName %v", err)
	}
	if err := rmqclient.CheckCredentials(c.Credentials.AccessKey, c.Credentials.SecretKey, c.Credentials.SecurityToken); err != nil {
		return bad("Credentials %v", err)
	}
	l, err := Limits{MaxMessageSize: c.MaxMessageSize}.withDefaults()
	if err != nil {
		return c, err
	}
	c.MaxMessageSize = l.MaxMessageSize
	switch {
	case c.SendTimeout == 0:
		c.SendTimeout = DefaultSendTimeout
	case c.SendTimeout < time.Millisecond:
		return bad("SendTimeout must be at least 1ms, got %s", c.SendTimeout)
	}
	switch {
	case c.Retries == 0:
		c.Retries = DefaultRetries
	case c.Retries < 0:
		c.Retries = 0
	case c.Retries > 100:
		return bad("Retries must be at most 100, got %d", c.Retries)
	}
	switch {
	case c.MaxBatch == 0:
		c.MaxBatch = DefaultMaxBatch
	case c.MaxBatch < 1 || c.MaxBatch > 1024:
		return bad("MaxBatch must be between 1 and 1024, got %d", c.MaxBatch)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ClientLogLevel == nil {
		c.ClientLogLevel = slog.LevelWarn
	}
	return c, nil
}
