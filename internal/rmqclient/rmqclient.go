package rmqclient

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"sync/atomic"
)

var validName = regexp.MustCompile(`^[%|a-zA-Z0-9_-]{1,255}$`)

// CheckName reports whether s is a group, topic or namespace name the client and broker accept: 1 to 255
// characters of [A-Za-z0-9_%|-].
func CheckName(s string) error {
	if !validName.MatchString(s) {
		return fmt.Errorf("%q must be 1 to 255 characters of [A-Za-z0-9_%%|-]", s)
	}
	return nil
}

// CheckNameServers accepts a non-empty list of literal IP:port addresses. rocketmq-client-go resolves no host
// names (localhost:9876 fails at the first request), and with no name server it tries an HTTP lookup service.
func CheckNameServers(addrs []string) error {
	if len(addrs) == 0 {
		return fmt.Errorf(`at least one literal IP:port is required, e.g. "127.0.0.1:9876"`)
	}
	for i, a := range addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("[%d] %q: %v", i, a, err)
		}
	}
	return nil
}

func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want IP:port: %v", err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("host %q is not a literal IP address (the client does not resolve names)", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q is not between 1 and 65535", port)
	}
	return nil
}

// CheckInstanceName rejects "DEFAULT", which the client replaces by the process id, shared by every client that
// kept the default.
func CheckInstanceName(s string) error {
	if s == "DEFAULT" {
		return fmt.Errorf(`must not be "DEFAULT" (the client shares that one between all clients of the process)`)
	}
	return nil
}

var seq atomic.Int64

// UniqueInstanceName returns prefix-<pid>-<n>-<random>: unique in the process and, with the random part, across
// processes that share a pid namespace (containers).
func UniqueInstanceName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%d-%s", prefix, os.Getpid(), seq.Add(1), hex.EncodeToString(b))
}

// CheckCredentials accepts no credentials, or an access key with its secret key and an optional security token.
func CheckCredentials(accessKey, secretKey, securityToken string) error {
	switch {
	case (accessKey == "") != (secretKey == ""):
		return fmt.Errorf("need both AccessKey and SecretKey, or neither")
	case securityToken != "" && accessKey == "":
		return fmt.Errorf("SecurityToken needs AccessKey and SecretKey")
	}
	return nil
}
