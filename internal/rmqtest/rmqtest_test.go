package rmqtest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/txbox/txbox/internal/rmqlog"
	"github.com/txbox/txbox/internal/rmqtest"
	"github.com/txbox/txbox/internal/testdb"
)

func TestMain(m *testing.M) {
	rmqlog.Install(nil, rmqlog.DefaultLevel)
	testdb.Main(m, rmqtest.LeakOptions()...)
}

// TestTopicIsRoutedAndSendable proves the harness: a fresh topic is routed when CreateTopic returns, a producer
// can send to it at once, and the admin tool finds the message by key.
func TestTopicIsRoutedAndSendable(t *testing.T) {
	b := rmqtest.Get(t)
	topic := b.Topic(t, 2)
	p, err := producer.NewDefaultProducer(producer.WithNameServer(b.NameServers()),
		producer.WithGroupName(rmqtest.Name(t, "P")), producer.WithInstanceName(rmqtest.Name(t, "I")))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := rmqtest.Name(t, "K")
	res, err := p.SendSync(ctx, primitive.NewMessage(topic, []byte("x")).WithKeys([]string{key}))
	if err != nil || res.Status != primitive.SendOK {
		t.Fatalf("send: %v %v", res, err)
	}
	out := rmqtest.Admin(t, "queryMsgByKey", "-n", b.Namesrv, "-t", topic, "-k", key)
	if !strings.Contains(out, res.MsgID) {
		t.Fatalf("queryMsgByKey did not list %s:\n%s", res.MsgID, out)
	}
}
