package bus

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// CreateTopic creates a topic with the repository's scripts/rocketmq.sh, which also waits until the name
// server has the topic's route: a consumer cannot start on a topic without one.
func CreateTopic(ctx context.Context, script, topic string, queues int) error {
	out, err := exec.CommandContext(ctx, script, "topic", topic, strconv.Itoa(queues)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("create topic %s with %s: %w: %s", topic, script, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// RetryTopic is the topic the broker moves a consumer group's failed messages to. The broker creates it on
// the group's first failure, but a running consumer only learns its route at its next route refresh (30 s)
// and rebalance (20 s): creating it before the consumer starts makes the first redeliveries come back in
// about a second (the test broker's delay levels) instead of up to a minute.
func RetryTopic(group string) string { return "%RETRY%" + group }
