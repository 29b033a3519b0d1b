package inbox_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/trace"

	"github.com/txbox/txbox/inbox"
	"github.com/txbox/txbox/internal/testdb"
)

func TestHandlerContinuesTheProducersTrace(t *testing.T) {
	testdb.Run(t, func(t *testing.T, db *testdb.DB) {
		ib, err := inbox.New(db.DB, inbox.Config{Dialect: db.Dialect, Consumer: "traced"})
		if err != nil {
			t.Fatal(err)
		}
		var got trace.SpanContext
		d := inbox.Delivery{Key: "1/trace", Payload: []byte("p"), Headers: map[string]string{
			"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}}
		res, err := ib.Process(context.Background(), d, func(ctx context.Context, _ *sqlx.Tx) error {
			got = trace.SpanContextFromContext(ctx)
			return nil
		})
		if err != nil || res != inbox.Processed {
			t.Fatalf("Process = %v, %v", res, err)
		}
		if got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID().String() != "00f067aa0ba902b7" ||
			!got.IsRemote() || !got.IsSampled() {
			t.Fatalf("handler's span context = %+v, want the remote parent from traceparent", got)
		}
	})
}
