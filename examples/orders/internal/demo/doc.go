// Package demo drives the example end to end: it runs the order and payment services in this process (each
// with its own database and broker clients, sharing nothing but the broker), creates orders through the
// order service's HTTP API with failures injected, waits until every order is paid and every injected
// duplicate has come back and been absorbed, and then checks the databases from outside the services.
//
// cmd/demo and the example's test both call Run.
package demo
