package outbox

import "hash/fnv"

// Partitions is the number of partitions keyed rows are spread over. Relays own partitions, not keys, so this
// bounds how many relay workers can publish keyed rows in parallel. It is part of the stored data: changing it
// would reorder keys in flight, so it is a constant.
const Partitions = 64

// PartitionOf returns the partition stored with a message of this sharding key: FNV-1a of the key's bytes
// modulo Partitions, or -1 for no sharding key (such rows are claimed one by one, in full parallelism).
func PartitionOf(shardingKey string) int {
	if shardingKey == "" {
		return -1
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(shardingKey))
	return int(h.Sum32() % Partitions)
}
