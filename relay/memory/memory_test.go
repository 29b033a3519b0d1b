package memory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/txbox/txbox/internal/publishertest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay"
	"github.com/txbox/txbox/relay/memory"
)

func TestMain(m *testing.M) { testdb.Main(m) }

func TestConformance(t *testing.T) {
	publishertest.Run(t, func(t *testing.T) publishertest.Harness {
		p := memory.New()
		return publishertest.Harness{
			Publisher: p,
			Topic:     "conformance",
			Receive: func(ctx context.Context, n int) ([]publishertest.Received, error) {
				if err := p.WaitLen(ctx, n); err != nil {
					return nil, err
				}
				var out []publishertest.Received
				for _, r := range p.Records() {
					out = append(out, publishertest.Received{Topic: r.Topic, Key: r.Key, Tag: r.Tag, Payload: r.Payload, Headers: r.Headers})
				}
				return out, nil
			},
			Broken: func(*testing.T) relay.Publisher {
				return &memory.Publisher{Fail: func(outbox.Record) error { return errors.New("broker down") }}
			},
		}
	})
}
