package outbox_test

import (
	"testing"

	"github.com/txbox/txbox/outbox"
)

// The partition of a sharding key is stored with every keyed row and decides which relay publishes it: a
// change of the hash would move keys in flight to other partitions and break their order across relays. These
// values are FNV-1a (32 bit) of the key's bytes modulo 64, computed outside Go (FNV-1, the other common
// variant, gives a different partition for every key below); they must never change.
func TestPartitionOfIsStable(t *testing.T) {
	golden := map[string]int{
		"":                   -1,
		"a":                  44,
		"customer-1":         23,
		"customer-2":         42,
		"order/12345":        51,
		"Order/12345":        19,
		"order/12345 ":       41,
		"ünï cødé":           20,
		"00000000-0000-0000": 63,
		"a-very-long-sharding-key-with-many-characters-0123456789": 25,
	}
	for k, want := range golden {
		if got := outbox.PartitionOf(k); got != want {
			t.Errorf("PartitionOf(%q) = %d, want %d (stored data: the hash must not change)", k, got, want)
		}
	}
}
