package rmqquery_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/internal/rmqquery"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
	"github.com/txbox/txbox/outbox"
	"github.com/txbox/txbox/relay/rocketmq"
)

func TestMain(m *testing.M) { testdb.Main(m, rmqtest.LeakOptions()...) }

// lookup polls until the broker's key index answers with want copies (the index is written after the send
// returns), failing the test after a minute.
func lookup(t *testing.T, c *rmqquery.Client, topic, key string, want int) []*primitive.MessageExt {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		msgs, err := c.QueryByKey(context.Background(), topic, key)
		if err != nil {
			t.Fatalf("QueryByKey(%s, %q): %v", topic, key, err)
		}
		if len(msgs) >= want || time.Now().After(deadline) {
			if len(msgs) != want {
				t.Fatalf("QueryByKey(%s, %q) found %d copies, want %d", topic, key, len(msgs), want)
			}
			return msgs
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not a wait for work
	}
}

// The broker's copies of a key are found as txbox's publisher sends them (a key with spaces and '%', sent
// twice: two copies) and as a producer that is not txbox sends them (KEYS only); keys that merely share the
// index's text are not.
func TestQueryByKey(t *testing.T) {
	b := rmqtest.Get(t)
	topic := b.Topic(t, 2)
	pub, err := rocketmq.New(rocketmq.Config{NameServers: b.NameServers(), Group: rmqtest.Name(t, "P")})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	key := "12345/paid with space 100%"
	before := time.Now()
	for range 2 { // a re-send after a lost confirm is a second copy
		if err := pub.Publish(context.Background(), outbox.Record{ID: 1, Message: outbox.Message{Topic: topic, Key: key,
			Payload: []byte("p")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(context.Background(), outbox.Record{ID: 2, Message: outbox.Message{Topic: topic, Key: key + "/x",
		Payload: []byte("p")}}); err != nil {
		t.Fatal(err)
	}
	foreign := primitive.NewMessage(topic, []byte("f"))
	foreign.WithKeys([]string{"order-7/paid", "secondary"})
	ids := b.SendRaw(t, foreign)

	c := &rmqquery.Client{NameServers: b.NameServers()}
	msgs := lookup(t, c, topic, key, 2)
	for _, m := range msgs {
		stored := time.UnixMilli(m.StoreTimestamp)
		if m.Topic != topic || m.MsgId == "" || stored.Before(before.Add(-time.Second)) || stored.After(time.Now().Add(time.Second)) {
			t.Errorf("copy = topic %s msg id %q stored %v", m.Topic, m.MsgId, stored)
		}
	}
	if got := lookup(t, c, topic, "order-7/paid", 1); got[0].MsgId != ids[0] {
		t.Errorf("foreign message id = %s, want %s", got[0].MsgId, ids[0])
	}
	bm, err := c.Lookup(context.Background(), topic, key+"/x")
	if err != nil || len(bm) != 1 || bm[0].Topic != topic || !strings.Contains(bm[0].Queue, "/") || bm[0].StoredAt.IsZero() {
		t.Fatalf("Lookup = %+v, %v", bm, err)
	}
	if none, err := c.QueryByKey(context.Background(), topic, "12345/never-sent"); err != nil || len(none) != 0 {
		t.Errorf("a key never sent: %d copies, %v", len(none), err)
	}
	missing := rmqtest.Name(t, "missing")
	if _, err := c.QueryByKey(context.Background(), missing, key); !errors.Is(err, rmqquery.ErrTopicNotExist) ||
		!strings.Contains(err.Error(), missing) {
		t.Errorf("unknown topic: err = %v, want ErrTopicNotExist naming it", err)
	}
	if bm, err := c.Lookup(context.Background(), missing, key); err != nil || len(bm) != 0 {
		t.Errorf("Lookup on an unknown topic = %v, %v; want no copies and no error", bm, err)
	}
	dead := &rmqquery.Client{NameServers: []string{"127.0.0.1:1"}, Timeout: 2 * time.Second}
	if _, err := dead.QueryByKey(context.Background(), topic, key); err == nil {
		t.Error("a name server that does not answer: no error")
	}
}
