// Package rmqlog routes rocketmq-client-go's logging (package rlog) to a *slog.Logger.
//
// rlog is process-global: the client keeps one logger for every producer, consumer and admin client in the
// process. Install therefore replaces the destination for all of them; the last call wins. By default the client
// logs to stderr at Info through logrus (and its Fatal exits the process); once Install has run, records go to
// the given slog.Logger, records below the given level are dropped, Fatal is logged at Error and never exits,
// and message bodies the client attaches to some records are reduced to their ids, topic and queue, so payloads
// never reach the log (txbox's rule: no payloads above Debug, and this adapter does not log them at all).
//
// txbox's RocketMQ packages call Install from their New; applications that want the client's chatter can call
// it again afterwards with a lower level.
package rmqlog
