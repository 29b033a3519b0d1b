package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/txbox/txbox/dialect"
)

// Table names are validated before any SQL is rendered: New refuses a bad prefix or a table set whose names
// are not plain identifiers, with ErrInvalidIdent, and never renders a statement with them.
func TestNewRefusesBadTables(t *testing.T) {
	good, err := dialect.TablesFor("")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []dialect.Dialect{dialect.MySQL, dialect.Postgres} {
		bad := []dialect.Tables{
			{Prefix: "Txbox"},
			{Prefix: "a.b.c"},
			{Prefix: "x; DROP TABLE y"},
		}
		for _, set := range []func(*dialect.Tables){
			func(t *dialect.Tables) { t.Outbox = "outbox; DROP TABLE x" },
			func(t *dialect.Tables) { t.InboxDead = "dead-letters" },
			func(t *dialect.Tables) { t.OutboxPublished = "" },
		} {
			tb := good
			set(&tb)
			bad = append(bad, tb)
		}
		for _, tb := range bad {
			if _, err := New(d, tb); !errors.Is(err, dialect.ErrInvalidIdent) {
				t.Errorf("%s: New(%+v) = %v, want ErrInvalidIdent", d.Name(), tb, err)
			}
		}
		if _, err := New(d, good); err != nil {
			t.Errorf("%s: New(default tables) = %v", d.Name(), err)
		}
	}
}

func TestNotifyChannel(t *testing.T) {
	if got := NotifyChannel("txbox_outbox"); got != "txbox_outbox" {
		t.Errorf("NotifyChannel(txbox_outbox) = %q", got)
	}
	if got := NotifyChannel("app.txbox_outbox"); got != "app_txbox_outbox" {
		t.Errorf("NotifyChannel(app.txbox_outbox) = %q", got)
	}
	long := strings.Repeat("s", 63) + "." + strings.Repeat("p", 32) + "_outbox"
	if got := NotifyChannel(long); len(got) > dialect.MaxIdentLen || got == NotifyChannel(long+"x") {
		t.Errorf("NotifyChannel(long) = %q: want at most 63 bytes, distinct per table", got)
	}
}
