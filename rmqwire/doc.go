// Package rmqwire is txbox's RocketMQ wire format: how an outbox message becomes a RocketMQ message (user
// properties and body) and how a received message is read back. relay/rocketmq writes it and inbox/rocketmq
// reads it; producers and consumers that are not txbox use this package to interoperate with them on purpose.
//
// # Format
//
//	business key   user property TXBOX_KEY, byte for byte; and the KEYS property (the broker's key index, what
//	               mqadmin queryMsgByKey searches) with '%' written "%25" and ' ' written "%20", because the
//	               client joins keys with spaces and the broker splits on them (EncodeKey, DecodeKey)
//	outbox row id  user property TXBOX_OUTBOX_ID, decimal (absent for messages not sent by a relay)
//	tag            TAGS
//	sharding key   SHARDING_KEY (the relay also picks the queue by it)
//	deliver at     TIMER_DELIVER_MS, a RocketMQ 5 timer message, in Unix milliseconds
//	headers        user properties of the same names; the client drops properties with empty values, so the
//	               names of empty headers travel in TXBOX_EMPTY_HEADERS, EncodeKey-encoded and space-separated
//	payload        the body; the broker refuses an empty body, so an empty payload is the one byte 0x00 with
//	               TXBOX_EMPTY_BODY=1
//
// Header names that RocketMQ or txbox use themselves (KEYS, TAGS, UNIQ_KEY, DELAY, TXBOX_KEY, ...: [Reserved])
// and the bytes 0x01 and 0x02 anywhere (the client's property separators, which it does not escape) cannot be
// sent; [Encode] refuses them with an error wrapping [ErrInvalid], as it refuses properties longer than the
// broker stores.
//
// A message from a producer that is not txbox usually sets only KEYS: [Decode] then takes its first key as the
// business key (see Decode for the exact rule).
package rmqwire
