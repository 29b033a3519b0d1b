package cli

import (
	"context"
	"slices"
	"testing"
)

func TestNameServers(t *testing.T) {
	ctx := context.Background()
	got, err := NameServers(ctx, " 127.0.0.1:9876, localhost:9877 ")
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:9876", "127.0.0.1:9877"}) {
		t.Errorf("got %v, %v; want literal IPv4 addresses", got, err)
	}
	for _, bad := range []string{"", " , ", "127.0.0.1", "no-such-host.invalid:9876"} {
		if _, err := NameServers(ctx, bad); err == nil {
			t.Errorf("NameServers(%q): no error", bad)
		}
	}
}
