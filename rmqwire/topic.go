package rmqwire

import (
	"fmt"
	"strings"
)

// MaxTopicLen is the longest topic name the broker accepts, namespace prefix ("ns%") included.
const MaxTopicLen = 127

// systemTopics are the topics the broker refuses to take messages for from a producer (NO_PERMISSION,
// TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET in RocketMQ 5).
var systemTopics = map[string]bool{
	"SCHEDULE_TOPIC_XXXX": true, "RMQ_SYS_TRANS_HALF_TOPIC": true, "RMQ_SYS_TRANS_OP_HALF_TOPIC": true,
	"TRANS_CHECK_MAX_TIME_TOPIC": true, "SELF_TEST_TOPIC": true, "OFFSET_MOVED_EVENT": true,
}

// CheckTopic reports an error wrapping ErrInvalid when the broker would refuse to store a message for topic, the
// name as the broker sees it (with a namespace: "ns%topic"): an empty name, a character outside
// [%|a-zA-Z0-9_-] (the broker's TopicValidator), more than MaxTopicLen characters, a system topic producers may
// not send to, or a consumer group's retry or dead-letter topic (%RETRY%..., %DLQ%...).
func CheckTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("topic is empty: %w", ErrInvalid)
	case len(topic) > MaxTopicLen:
		return fmt.Errorf("topic is %d characters, more than the broker's %d: %w", len(topic), MaxTopicLen, ErrInvalid)
	case systemTopics[topic]:
		return fmt.Errorf("topic %q is a RocketMQ system topic producers may not send to: %w", topic, ErrInvalid)
	case strings.HasPrefix(topic, "%RETRY%"), strings.HasPrefix(topic, "%DLQ%"):
		return fmt.Errorf("topic %q is a consumer group's retry or dead-letter topic: %w", topic, ErrInvalid)
	}
	for i := 0; i < len(topic); i++ {
		if c := topic[i]; !topicChar(c) {
			return fmt.Errorf("topic %q contains %q at offset %d; the broker allows only [%%|a-zA-Z0-9_-]: %w",
				topic, c, i, ErrInvalid)
		}
	}
	return nil
}

func topicChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '%' || c == '|' ||
		c == '_' || c == '-'
}
