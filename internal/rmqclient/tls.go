package rmqclient

import (
	"fmt"
	"sync"
)

// rocketmq-client-go keeps its TLS switch in one process-global struct (remote.DefaultRemotingClientConfig): every
// client's WithTls option writes it, and every client reads it whenever it dials, without synchronisation. So
// the client created last decides for all of them, including those already running, and writing it while
// another client dials is a data race. tlsUse records what the switch holds and how many txbox clients rely on
// it: a client asking for the other setting while one runs is refused, and the switch is written only when it
// changes (when no txbox client runs), never just to repeat its value.
var tlsUse struct {
	sync.Mutex
	on    bool // the switch's value: the client's default (false) until written
	count int
}

// AcquireTLS registers a client that uses TLS (or not). It returns whether the caller must pass WithTls(on) to
// the client (the switch holds the other value) and the function that unregisters the client, to be called once
// it is shut down. It fails while another registered client uses the other setting.
func AcquireTLS(on bool) (write bool, release func(), err error) {
	tlsUse.Lock()
	defer tlsUse.Unlock()
	if tlsUse.count > 0 && tlsUse.on != on {
		return false, nil, fmt.Errorf("%d RocketMQ client(s) of this process run with TLS %v, and rocketmq-client-go's "+
			"TLS switch is process-global: shut them down first, or give every client the same setting",
			tlsUse.count, tlsUse.on)
	}
	write = tlsUse.on != on
	tlsUse.on = on
	tlsUse.count++
	var once sync.Once
	return write, func() {
		once.Do(func() {
			tlsUse.Lock()
			tlsUse.count--
			tlsUse.Unlock()
		})
	}, nil
}
