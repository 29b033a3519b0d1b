package rmqwire_test

import (
	"context"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jmoiron/sqlx"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/inbox/rocketmq"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	relayrmq "github.com/txbox/txbox/relay/rocketmq"
	"github.com/txbox/txbox/rmqwire"
)

func TestMain(m *testing.M) { testdb.Main(m, rmqtest.LeakOptions()...) }

// A plain rocketmq-client-go consumer reads what txbox's publisher sent with rmqwire.Decode, field for field.
func TestPublisherToRawConsumer(t *testing.T) {
	b := rmqtest.Get(t)
	topic := b.Topic(t, 2)
	pub, err := relayrmq.New(relayrmq.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "P")})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	want := outbox.Record{ID: 77, Message: outbox.Message{Topic: topic, Key: "12345/paid with space 100%", Tag: "paid",
		ShardingKey: "customer-9", Payload: []byte{}, Headers: map[string]string{"trace": "t1", "empty": ""}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, want); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-b.Collect(t, topic):
		got, err := rmqwire.Decode(m.GetProperties(), m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got.Key != want.Key || got.Tag != want.Tag || got.ShardingKey != want.ShardingKey || got.OutboxID != want.ID ||
			len(got.Payload) != 0 || got.Payload == nil || !maps.Equal(got.Headers, want.Headers) {
			t.Fatalf("decoded %+v\nfrom a publish of %+v", got, want)
		}
		if m.GetKeys() != rmqwire.EncodeKey(want.Key) {
			t.Fatalf("KEYS = %q, want the encoded key %q (what mqadmin queryMsgByKey searches)", m.GetKeys(), rmqwire.EncodeKey(want.Key))
		}
	case <-ctx.Done():
		t.Fatal("the raw consumer received nothing")
	}
}

// A plain rocketmq-client-go producer reaches txbox's consumer two ways: with rmqwire.Encode (every field as
// txbox's own publisher would write it) and as a foreign producer that only sets KEYS (the business key is its
// first key). With RequireKeyProperty the foreign message is parked instead.
func TestRawProducerToConsumer(t *testing.T) {
	b := rmqtest.Get(t)
	tg := testdb.Targets[0]
	for _, require := range []bool{false, true} {
		t.Run(map[bool]string{false: "keys fallback", true: "require property"}[require], func(t *testing.T) {
			t.Parallel()
			db := testdb.Open(t, tg)
			topic := b.Topic(t, 2)
			ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: "raw"})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			seen := map[string]*rocketmq.Message{}
			c, err := rocketmq.New(ib, rocketmq.Config{NameServers: b.NameServers(), Group: b.Group(t), Topic: topic,
				FromFirstOffset: true, RequireKeyProperty: require},
				func(_ context.Context, _ *sqlx.Tx, m *rocketmq.Message) error {
					mu.Lock()
					defer mu.Unlock()
					seen[m.Key] = m
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			encoded := rmqwire.Message{Key: "order 1/paid", Tag: "paid", Payload: nil,
				Headers: map[string]string{"h": "v", "blank": ""}, OutboxID: 5}
			props, body, err := rmqwire.Encode(encoded)
			if err != nil {
				t.Fatal(err)
			}
			m1 := primitive.NewMessage(topic, body)
			m1.WithProperties(props)
			m1.WithTag(encoded.Tag)
			foreign := primitive.NewMessage(topic, []byte("legacy body"))
			foreign.WithKeys([]string{"order-2/paid", "secondary"})
			foreign.WithProperty("origin", "legacy")
			b.SendRaw(t, m1, foreign)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			deadline := time.Now().Add(45 * time.Second)
			for {
				mu.Lock()
				got1, got2 := seen["order 1/paid"], seen["order-2/paid"]
				mu.Unlock()
				dead, err := ib.ListDead(ctx, inbox.DeadFilter{})
				if err != nil {
					t.Fatal(err)
				}
				if got1 != nil && (got2 != nil || len(dead) == 1) {
					if string(got1.Payload) != "" || got1.Payload == nil || !maps.Equal(got1.Headers, encoded.Headers) ||
						got1.Tag != "paid" || got1.OutboxID != 5 {
						t.Fatalf("encoded message arrived as %+v", got1)
					}
					if require {
						if got2 != nil || len(dead) != 1 || string(dead[0].Delivery.Payload) != "legacy body" {
							t.Fatalf("with RequireKeyProperty the foreign message must be parked: handled %v, dead %+v", got2 != nil, dead)
						}
					} else if got2 == nil || string(got2.Payload) != "legacy body" || got2.Headers["origin"] != "legacy" || len(dead) != 0 {
						t.Fatalf("foreign message: %+v, dead letters %d", got2, len(dead))
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("timed out: encoded %v, foreign %v, dead %d", got1 != nil, got2 != nil, len(dead))
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
