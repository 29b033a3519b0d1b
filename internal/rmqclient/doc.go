// Package rmqclient holds the client settings relay/rocketmq and inbox/rocketmq validate the same way: name
// server addresses, group and namespace names, and unique instance names.
package rmqclient
