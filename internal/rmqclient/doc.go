// Package rmqclient holds the client settings relay/rocketmq and inbox/rocketmq validate the same way: name
// server addresses, group and namespace names, credentials, unique instance names, and the process-global TLS
// switch of rocketmq-client-go (AcquireTLS).
package rmqclient
