// Package rmqtest is txbox's test bed for the real RocketMQ broker: it finds the name server and broker named by
// environment variables, creates a fresh topic (and consumer group) per test and waits until the name server
// routes it, runs the broker's own admin tool, and lists the client goroutines a goroutine-leak check may ignore.
//
// Environment (printed by `scripts/rocketmq.sh env`, started by `make services`):
//
//	TXBOX_ROCKETMQ_NAMESRV  name server, a literal IP:port (127.0.0.1:9876); the client cannot resolve names
//	TXBOX_ROCKETMQ_BROKER   broker address (127.0.0.1:10911), where topics are created
//	TXBOX_ROCKETMQ_ADMIN    the mqadmin executable written by scripts/rocketmq.sh (optional; Admin skips without it)
//
// When TXBOX_ROCKETMQ_NAMESRV is unset a test is skipped with a message saying how to start the broker, unless CI
// is set: then it fails, so a CI run never passes by skipping.
//
// Only tests import this package.
package rmqtest
