// Package faults breaks things on purpose, for tests: Proxy sits between a client and a server on 127.0.0.1 and
// resets connections (all of them, one at random, one every so often, or the first that sends a given statement)
// or refuses new ones, so that the server looks down; Reroute and Proxied put one in front of a database.
//
// Nothing here is used outside tests.
package faults
