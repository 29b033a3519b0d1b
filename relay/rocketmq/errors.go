package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/txbox/txbox/relay"
)

// Errors returned (wrapped) by this package; match them with errors.Is.
var (
	// ErrInvalidConfig is returned by New for a Config it cannot use; the message names the field.
	ErrInvalidConfig = errors.New("relay/rocketmq: invalid config")
	// ErrClosed is returned by Publish after Shutdown (or Close) began.
	ErrClosed = errors.New("relay/rocketmq: publisher closed")
	// ErrInvalidMessage is returned by Publish for a record that cannot become a RocketMQ message: a reserved
	// header name, a property separator byte (0x01, 0x02) in the key, tag, sharding key or a header, or
	// properties longer than the broker stores. Nothing was sent. Such errors also match relay.ErrPermanent, so
	// the relay parks the row at once instead of retrying it.
	ErrInvalidMessage = errors.New("relay/rocketmq: record cannot be sent to RocketMQ")
	// ErrSend is returned by Publish when the client failed to send (no route, connection, timeout, broker
	// error code). The broker may or may not have stored the message; the relay retries and the consumer's
	// inbox absorbs a duplicate. When the broker or the route could not be reached the error also matches
	// relay.ErrUnavailable (see unavailable), so the relay counts no attempt and opens the topic's breaker.
	ErrSend = errors.New("relay/rocketmq: send failed")
	// ErrNotDurable is returned by Publish when the broker answered with a status other than SendOK
	// (FlushDiskTimeout, FlushSlaveTimeout, SlaveNotAvailable): the client reports no error for these, but the
	// message may be lost if the broker fails now, so the row is published again. The error is a *StatusError.
	ErrNotDurable = errors.New("relay/rocketmq: broker did not confirm a durable write")
	// ErrQueueUnavailable is returned (with ErrSend) by Publish for a record whose sharding key maps to a queue of
	// a broker that is not in the topic's route (it died, or restarts): the record is not sent, since a queue on
	// another broker would let the key's later messages overtake the earlier ones waiting on the lost broker. The
	// relay publishes it again later, in order, once the broker is back.
	ErrQueueUnavailable = errors.New("relay/rocketmq: the sharding key's queue is on a broker that is not in the route")
)

// StatusError is a send the broker answered with a status other than SendOK. It matches ErrNotDurable.
type StatusError struct {
	Status primitive.SendStatus
	MsgID  string // the client's message id (UNIQ_KEY) of the attempt
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("relay/rocketmq: broker answered %s for message %s: %v", statusName(e.Status), e.MsgID,
		ErrNotDurable)
}

// Is makes errors.Is(err, ErrNotDurable) true.
func (e *StatusError) Is(target error) bool { return target == ErrNotDurable }

func statusName(s primitive.SendStatus) string {
	switch s {
	case primitive.SendOK:
		return "SendOK"
	case primitive.SendFlushDiskTimeout:
		return "FlushDiskTimeout"
	case primitive.SendFlushSlaveTimeout:
		return "FlushSlaveTimeout"
	case primitive.SendSlaveNotAvailable:
		return "SlaveNotAvailable"
	case primitive.SendUnknownError:
		return "UnknownError"
	}
	return fmt.Sprintf("SendStatus(%d)", int(s))
}

// invalid wraps a mapping error so that it matches ErrInvalidMessage and relay.ErrPermanent.
func invalid(err error) error {
	return fmt.Errorf("%w (%w): %w", ErrInvalidMessage, relay.ErrPermanent, err)
}

// ErrRefused is returned by Publish when the broker refused the message for what it is: CODE 13
// MESSAGE_ILLEGAL (body or properties too long, ...), CODE 29 for a topic that failed the broker's validation,
// CODE 16 for a system topic. Retrying cannot help, so it also matches relay.ErrPermanent and the relay parks
// the row at once, with the broker's answer in its last error.
var ErrRefused = errors.New("relay/rocketmq: broker refused the message")

// unavailable reports whether a send error means the broker could not be reached, which says nothing about the
// record: the connection was refused, reset or closed (the broker died or restarts), the client has no route or
// no broker address for the topic (the name server lost the broker), or the broker did not answer within the
// client's SendTimeout (it hangs or is overloaded; the message may have been stored, and a duplicate is then
// absorbed by the consumer's inbox). A send cut off by the caller's ctx (the relay's own deadline) is not
// unavailability, nor is any answer of the broker (CODE n: the broker is up).
func unavailable(err error) bool {
	switch {
	case err == nil, errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, rmqerrors.ErrRequestTimeout), errors.Is(err, rmqerrors.ErrBrokerNotFound),
		errors.Is(err, rmqerrors.ErrRouteNotFound), errors.Is(err, rmqerrors.ErrTopicNotExist),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// The client formats some of these failures into plain text.
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"route info not found", "connection refused", "connection reset", "broken pipe",
		"use of closed network connection", "request timeout"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
