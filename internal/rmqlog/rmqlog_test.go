package rmqlog_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"github.com/txbox/txbox/internal/rmqlog"
)

func TestRoutesClientLogsWithoutPayloads(t *testing.T) {
	var buf bytes.Buffer
	rmqlog.Install(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), slog.LevelWarn)

	rlog.Info("rebalance", map[string]interface{}{"group": "g"}) // below the threshold
	if buf.Len() != 0 {
		t.Fatalf("Info passed a Warn threshold: %s", buf.String())
	}
	msg := &primitive.MessageExt{MsgId: "ID1", Message: primitive.Message{Topic: "T", Body: []byte("secret-payload")}}
	rlog.Warning("consume failed", map[string]interface{}{rlog.LogKeyMessages: []*primitive.MessageExt{msg}, "b": 1})
	rlog.Fatal("client is unhappy", nil) // must not exit the process
	out := buf.String()
	for _, want := range []string{"level=WARN", "consume failed", "msgId=ID1", "level=ERROR", "client is unhappy",
		"component=rocketmq-client"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret-payload") {
		t.Fatalf("payload reached the log:\n%s", out)
	}

	buf.Reset()
	rlog.SetLogLevel("debug") // code that asks the client for more detail still gets it
	rlog.Debug("pull", map[string]interface{}{"n": 3})
	if !strings.Contains(buf.String(), "pull") {
		t.Fatalf("SetLogLevel(debug) ignored: %q", buf.String())
	}
}
