package rocketmq

import (
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/txbox/txbox/outbox"
)

// NewWithOptions is New with extra client options (tests inject interceptors with it).
func NewWithOptions(cfg Config, extra ...producer.Option) (*Publisher, error) {
	return newPublisher(cfg, extra...)
}

// NewMessage exposes the record mapping.
func NewMessage(r outbox.Record, now time.Time) (*primitive.Message, error) {
	return newMessage(r, now)
}
