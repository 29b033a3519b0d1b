//go:build race

package rocketmq_test

// raceEnabled: see TestOrderly*.
const raceEnabled = true
