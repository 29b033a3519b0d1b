package console

import (
	"context"
	"time"
)

// Broker finds the broker's stored copies of a message by its business key, for traces: what RocketMQ's
// `mqadmin queryMsgByKey` shows. txbox's CLI implements it for RocketMQ (`txbox trace --namesrv`); any other
// broker can be plugged in.
type Broker interface {
	// Name describes the broker in traces, e.g. "rocketmq 127.0.0.1:9876".
	Name() string
	// Lookup returns the copies of the message with business key key stored on topic, oldest first. Copies
	// are what a producer sent: a re-send or a publish after a lost confirm is a second copy.
	Lookup(ctx context.Context, topic, key string) ([]BrokerMessage, error)
}

// BrokerMessage is one stored copy of a message.
type BrokerMessage struct {
	MsgID       string    `json:"msg_id"`
	Topic       string    `json:"topic"`
	Queue       string    `json:"queue"` // broker and queue, e.g. "broker-a/2"
	QueueOffset int64     `json:"queue_offset"`
	StoreHost   string    `json:"store_host"`
	BornAt      time.Time `json:"born_at"`   // when the producer created it
	StoredAt    time.Time `json:"stored_at"` // when the broker stored it
	// Reconsumes is the broker's redelivery count of this copy, when it is known.
	Reconsumes int `json:"reconsumes,omitempty"`
}
