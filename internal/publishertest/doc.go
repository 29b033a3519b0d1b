// Package publishertest is the conformance suite every relay.Publisher must pass: records arrive with key,
// tag, headers and payload intact; records of one sharding key published one after another arrive in that
// order; broker errors reach the caller; a cancelled context is honoured. It is broker-agnostic: a test hands
// it a Harness holding the Publisher and a way to read back what the broker received.
//
//	func TestConformance(t *testing.T) {
//		publishertest.Run(t, func(t *testing.T) publishertest.Harness {
//			topic := freshTopic(t)                // a topic only this test uses
//			return publishertest.Harness{
//				Publisher: newPublisher(t, topic),
//				Topic:     topic,
//				Receive:   consumerFor(t, topic), // waits for n messages and returns them
//				Broken:    unreachablePublisher,  // optional
//			}
//		})
//	}
//
// Only tests import this package.
package publishertest
