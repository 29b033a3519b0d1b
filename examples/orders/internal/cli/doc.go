// Package cli is what the example's commands share: environment variables, logging, signals and name-server
// addresses.
package cli
