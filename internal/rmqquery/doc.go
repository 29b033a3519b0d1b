// Package rmqquery finds the copies of a message a RocketMQ broker stores, by business key: what
// `mqadmin queryMsgByKey` shows, for `txbox trace --namesrv` and the console.
//
// rocketmq-client-go has no admin call for it, so this package speaks the two requests it needs of the
// Remoting protocol itself (JSON-serialized headers): GET_ROUTEINFO_BY_TOPIC to a name server, for the topic's
// brokers, and QUERY_MESSAGE to each broker's master, whose answer is a run of stored messages that
// primitive.DecodeMessage decodes. A broker answers from its key index (the KEYS property, which
// relay/rocketmq fills with rmqwire.EncodeKey of the business key), where different keys can share a hash
// slot: the answer is filtered to the messages that really carry the key. No ACL signing: a cluster with ACL
// enabled refuses the query, and the trace says so.
package rmqquery
