// Package bus is the example's glue between txbox and RocketMQ: a relay Publisher and a push consumer that runs
// every message through an inbox, plus the failure injection (Faults) and counters (Stats) that the demo
// reports. Both services use it; they share this code, never state.
package bus
