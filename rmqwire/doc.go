// Package rmqwire is the message format txbox's RocketMQ publisher writes and its consumer reads: the user
// properties txbox adds, how the business key is written into the broker's KEYS index, and how headers with
// empty values survive a client that drops them. relay/rocketmq and inbox/rocketmq both import it, so the two
// sides cannot drift apart.
package rmqwire
