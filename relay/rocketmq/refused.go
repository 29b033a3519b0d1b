package rocketmq

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/txbox/txbox/relay"
)

// Broker response codes (RocketMQ's ResponseCode) that can refuse a message for what it is.
const (
	codeMessageIllegal   = 13 // body or properties too long, topic too long, timer delay out of range
	codeNoPermission     = 16 // also: broker not writable, ACL (not permanent)
	codeInvalidParameter = 29 // also: queue id beyond a stale route (not permanent)
)

// clientCodeError is how rocketmq-client-go reports a broker's answer other than a send status.
var clientCodeError = regexp.MustCompile(`^CODE: (-?\d+), DESC: (?s:(.*))$`)

// refusal returns an error wrapping ErrRefused and relay.ErrPermanent when err, returned by the client's send,
// is a broker refusal no retry can change, and nil otherwise:
//
//	CODE 13 MESSAGE_ILLEGAL     every cause is the message itself: body over maxMessageSize, properties over
//	                            32 KiB, topic over 127 characters, a timer beyond the broker's maximum delay
//	CODE 29 INVALID_PARAMETER   when the topic failed the broker's validation ("The specified topic ..."); not
//	                            for a queue id beyond the topic's queues, which a refreshed route fixes
//	CODE 16 NO_PERMISSION       when the topic is a system topic ("Sending message to topic[...] is
//	                            forbidden."); not for a broker that is read-only for now or an ACL denial,
//	                            which an operator can change
//
// Other codes (system busy, flush and replica timeouts, topic not found yet, ...) are left to the caller.
func refusal(err error) error {
	if err == nil {
		return nil
	}
	m := clientCodeError.FindStringSubmatch(err.Error())
	if m == nil {
		return nil
	}
	code, _ := strconv.Atoi(m[1])
	desc := m[2]
	switch {
	case code == codeMessageIllegal,
		code == codeInvalidParameter && strings.HasPrefix(desc, "The specified topic"),
		code == codeNoPermission && strings.HasPrefix(desc, "Sending message to topic[") && strings.HasSuffix(desc, "is forbidden."):
		return fmt.Errorf("%w (%w): %w", ErrRefused, relay.ErrPermanent, err)
	}
	return nil
}

// isRefusal reports whether err is a refusal of refusal's kind.
func isRefusal(err error) bool { return errors.Is(err, ErrRefused) }
