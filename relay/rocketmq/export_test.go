package rocketmq

import (
	"context"
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
	return newMessage(Limits{MaxMessageSize: DefaultMaxMessageSize}, r, now)
}

// Refusal exposes the classification of broker answers.
var Refusal = refusal

// SendUnchecked sends msg as Publish sends a single message, without the Limits check: tests make the broker
// itself refuse with it.
func (p *Publisher) SendUnchecked(ctx context.Context, msg *primitive.Message) error {
	_, err := p.sendAlone(ctx, msg)
	return err
}
