package bus

import (
	"errors"
	"fmt"
	"hash/fnv"
)

// Faults injects the failures a broker-based system meets in production, so the demo can show that each one
// leaves exactly one effect. A message is chosen by a hash of its business key (the outbox key, e.g.
// "3f2a…/created"), so every process with the same Faults picks the same messages without talking to the
// others, and the choices are disjoint: one message gets at most one fault, which keeps the report's
// attribution of each duplicate to its cause exact.
//
// The zero value injects nothing.
type Faults struct {
	// LostAckPercent of messages are processed and committed, and then the consumer tells the broker it failed,
	// as if the ACK were lost on the way: the broker redelivers a message whose effect is already committed.
	LostAckPercent int
	// SlowPercent of messages get a handler that does its writes and then outlives the inbox's handler
	// deadline on its first delivery: the transaction is rolled back and the broker redelivers it.
	SlowPercent int
	// ResendPercent of messages are sent to the broker twice by the relay's publisher, as a producer does when
	// the broker's confirm is lost and it retries: two broker messages with the same key.
	ResendPercent int
	// LostResponsePercent of messages make the payment service's first call to the payment gateway lose its
	// answer: the gateway charged, the service sees an error (ErrLostResponse), releases the charge's record and
	// fails the delivery; the redelivery calls the gateway again with the same idempotency key. Only the payment
	// service calls the gateway, so only order-created messages are affected.
	LostResponsePercent int
}

// Fault is one kind of injected failure.
type Fault int

// The faults Faults can choose for a message.
const (
	NoFault Fault = iota
	LostAck
	Slow
	Resend
	LostResponse
)

// ErrLostResponse is the error the payment service's gateway call returns for an injected LostResponse.
var ErrLostResponse = errors.New("injected lost gateway response: charged, but the answer never arrived")

func (f Fault) String() string {
	switch f {
	case LostAck:
		return "lost ACK"
	case Slow:
		return "slow handler"
	case Resend:
		return "producer re-send"
	case LostResponse:
		return "lost gateway response"
	}
	return "none"
}

// Validate reports percentages out of range.
func (f Faults) Validate() error {
	for _, p := range []struct {
		name string
		v    int
	}{{"LostAckPercent", f.LostAckPercent}, {"SlowPercent", f.SlowPercent}, {"ResendPercent", f.ResendPercent},
		{"LostResponsePercent", f.LostResponsePercent}} {
		if p.v < 0 || p.v > 100 {
			return fmt.Errorf("faults: %s must be between 0 and 100, not %d", p.name, p.v)
		}
	}
	if s := f.LostAckPercent + f.SlowPercent + f.ResendPercent + f.LostResponsePercent; s > 100 {
		return fmt.Errorf("faults: the percentages add up to %d, more than 100", s)
	}
	return nil
}

// For returns the fault chosen for the message with this business key.
func (f Faults) For(key string) Fault {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	b := int(h.Sum32() % 100)
	switch {
	case b < f.LostAckPercent:
		return LostAck
	case b < f.LostAckPercent+f.SlowPercent:
		return Slow
	case b < f.LostAckPercent+f.SlowPercent+f.ResendPercent:
		return Resend
	case b < f.LostAckPercent+f.SlowPercent+f.ResendPercent+f.LostResponsePercent:
		return LostResponse
	}
	return NoFault
}
