package rmqquery

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/console"
	"github.com/txbox/txbox/rmqwire"
)

// Request and response codes of the Remoting protocol (RocketMQ's RequestCode and ResponseCode).
const (
	codeQueryMessage   = 12
	codeRouteByTopic   = 105
	codeSuccess        = 0
	codeTopicNotExist  = 17
	codeQueryNotFound  = 22
	remotingVersion    = 317 // what rocketmq-client-go sends
	maxFrame           = 64 << 20
	defaultMaxMessages = 64
)

// Client queries the brokers of a RocketMQ cluster by business key. It implements console.Broker. The zero
// value is not usable: set NameServers.
type Client struct {
	// NameServers are the name servers, literal IP:port; the first that answers is used.
	NameServers []string
	// Timeout bounds each request (dial, write, read). Default 5s.
	Timeout time.Duration
	// MaxMessages is the most copies asked of each broker. Default 64.
	MaxMessages int
}

var _ console.Broker = (*Client)(nil)

// ErrTopicNotExist is returned (wrapped) by QueryByKey when the name servers know no such topic.
var ErrTopicNotExist = errors.New("rocketmq query: topic does not exist")

// Name is "rocketmq" and the name servers.
func (c *Client) Name() string { return "rocketmq " + strings.Join(c.NameServers, ",") }

// Lookup returns the copies of the message with business key key stored on topic, oldest first: none when the
// topic does not exist (nothing was ever published to it).
func (c *Client) Lookup(ctx context.Context, topic, key string) ([]console.BrokerMessage, error) {
	msgs, err := c.QueryByKey(ctx, topic, key)
	if errors.Is(err, ErrTopicNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]console.BrokerMessage, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, console.BrokerMessage{
			MsgID: m.MsgId, Topic: m.Topic, Queue: fmt.Sprintf("%s/%d", m.Queue.BrokerName, m.Queue.QueueId),
			QueueOffset: m.QueueOffset, StoreHost: m.StoreHost, BornAt: time.UnixMilli(m.BornTimestamp).UTC(),
			StoredAt: time.UnixMilli(m.StoreTimestamp).UTC(), Reconsumes: int(m.ReconsumeTimes),
		})
	}
	return out, nil
}

// QueryByKey returns the stored messages of topic that carry the business key key (in the TXBOX_KEY property,
// or as the first entry of KEYS for producers that are not txbox), from every broker of the topic, sorted by
// store time.
func (c *Client) QueryByKey(ctx context.Context, topic, key string) ([]*primitive.MessageExt, error) {
	if len(c.NameServers) == 0 {
		return nil, errors.New("rocketmq query: no name server")
	}
	brokers, err := c.route(ctx, topic)
	if err != nil {
		return nil, err
	}
	max := c.MaxMessages
	if max <= 0 {
		max = defaultMaxMessages
	}
	var out []*primitive.MessageExt
	var errs []error
	for _, b := range brokers {
		msgs, err := c.query(ctx, b, topic, rmqwire.EncodeKey(key), max)
		if err != nil {
			errs = append(errs, fmt.Errorf("broker %s (%s): %w", b.name, b.addr, err))
			continue
		}
		for _, m := range msgs {
			if m.Topic == topic && carries(m, key) {
				m.Queue.BrokerName = b.name
				out = append(out, m)
			}
		}
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortStableFunc(out, func(a, b *primitive.MessageExt) int {
		return int(a.StoreTimestamp - b.StoreTimestamp)
	})
	return out, nil
}

// carries reports whether m's business key is key (package rmqwire's rules).
func carries(m *primitive.MessageExt, key string) bool {
	if k, ok := m.GetProperties()[rmqwire.PropKey]; ok {
		return k == key
	}
	first, _, _ := strings.Cut(m.GetKeys(), " ")
	return first == key
}

type broker struct{ name, addr string }

// route asks the name servers for topic's brokers and returns each broker's master.
func (c *Client) route(ctx context.Context, topic string) ([]broker, error) {
	var errs []error
	for _, ns := range c.NameServers {
		resp, err := c.call(ctx, ns, codeRouteByTopic, map[string]string{"topic": topic})
		if err != nil {
			errs = append(errs, fmt.Errorf("name server %s: %w", ns, err))
			continue
		}
		switch resp.Code {
		case codeSuccess:
			return parseRoute(resp.Body)
		case codeTopicNotExist:
			return nil, fmt.Errorf("%w: %q (name server %s)", ErrTopicNotExist, topic, ns)
		default:
			return nil, fmt.Errorf("rocketmq query: route of topic %q: code %d: %s", topic, resp.Code, resp.Remark)
		}
	}
	return nil, fmt.Errorf("rocketmq query: %w", errors.Join(errs...))
}

// bareKey matches an integer map key the name server writes unquoted (fastjson: {0:"127.0.0.1:10911"}).
var bareKey = regexp.MustCompile(`([{,]\s*)(\d+)(\s*:)`)

func parseRoute(body []byte) ([]broker, error) {
	var route struct {
		BrokerDatas []struct {
			BrokerName  string            `json:"brokerName"`
			BrokerAddrs map[string]string `json:"brokerAddrs"`
		} `json:"brokerDatas"`
	}
	if err := json.Unmarshal(bareKey.ReplaceAll(body, []byte(`$1"$2"$3`)), &route); err != nil {
		return nil, fmt.Errorf("rocketmq query: decode topic route: %w", err)
	}
	var out []broker
	for _, b := range route.BrokerDatas {
		if addr, ok := b.BrokerAddrs["0"]; ok { // the master
			out = append(out, broker{name: b.BrokerName, addr: addr})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("rocketmq query: the topic's route names no master broker")
	}
	return out, nil
}

func (c *Client) query(ctx context.Context, b broker, topic, encodedKey string, max int) (msgs []*primitive.MessageExt, err error) {
	resp, err := c.call(ctx, b.addr, codeQueryMessage, map[string]string{
		"topic": topic, "key": encodedKey, "maxNum": strconv.Itoa(max), "beginTimestamp": "0",
		"endTimestamp": strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10), "_UNIQUE_KEY_QUERY": "false",
	})
	if err != nil {
		return nil, err
	}
	switch resp.Code {
	case codeSuccess:
	case codeQueryNotFound:
		return nil, nil
	default:
		return nil, fmt.Errorf("query message: code %d: %s", resp.Code, resp.Remark)
	}
	defer func() {
		if p := recover(); p != nil { // a body primitive.DecodeMessage cannot read
			msgs, err = nil, fmt.Errorf("decode the stored messages: %v", p)
		}
	}()
	return primitive.DecodeMessage(resp.Body), nil
}

// command is a Remoting command with a JSON header.
type command struct {
	Code      int               `json:"code"`
	Language  string            `json:"language"`
	Version   int               `json:"version"`
	Opaque    int32             `json:"opaque"`
	Flag      int               `json:"flag"`
	Remark    string            `json:"remark,omitempty"`
	ExtFields map[string]string `json:"extFields,omitempty"`
	Body      []byte            `json:"-"`
}

var opaque atomic.Int32

// call sends one request on a connection of its own and reads its response.
func (c *Client) call(ctx context.Context, addr string, code int, ext map[string]string) (*command, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := command{Code: code, Language: "GO", Version: remotingVersion, Opaque: opaque.Add(1), ExtFields: ext}
	header, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 8, 8+len(header))
	binary.BigEndian.PutUint32(frame[0:4], uint32(4+len(header)))
	binary.BigEndian.PutUint32(frame[4:8], uint32(len(header))) // serialization type 0 (JSON) in the top byte
	if _, err := conn.Write(append(frame, header...)); err != nil {
		return nil, err
	}
	for {
		resp, err := readCommand(conn)
		if err != nil {
			return nil, err
		}
		if resp.Opaque == req.Opaque && resp.Flag&1 == 1 { // our response (the broker may send requests too)
			return resp, nil
		}
	}
}

func readCommand(r io.Reader) (*command, error) {
	var head [8]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	size := binary.BigEndian.Uint32(head[0:4])
	hdr := binary.BigEndian.Uint32(head[4:8])
	headerLen, codec := hdr&0xFFFFFF, hdr>>24
	if size > maxFrame || headerLen > size-4 {
		return nil, fmt.Errorf("read response: bad frame (size %d, header %d)", size, headerLen)
	}
	if codec != 0 {
		return nil, fmt.Errorf("read response: header serialized as type %d, want JSON (0)", codec)
	}
	buf := make([]byte, size-4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	var cmd command
	dec := json.NewDecoder(bytes.NewReader(buf[:headerLen]))
	if err := dec.Decode(&cmd); err != nil {
		return nil, fmt.Errorf("read response header: %w", err)
	}
	cmd.Body = buf[headerLen:]
	return &cmd, nil
}
