// Command licenses lists the license of every module in txbox's build list (go list -m all) from the module
// cache, downloading a module through the module proxy when it is not cached yet, and fails when a license is
// unknown or not compatible with distributing txbox under Apache-2.0.
//
// Usage: go run ./internal/licenses [-md FILE]
//
// Modules whose packages are compiled into txbox's packages, commands or tests are marked "linked"; the others
// are in the build list only because a dependency's go.mod names them (goose's database drivers, for example).
// Only a linked module's license can fail the check; a build-list-only module without a known license is listed
// and marked, since nothing of it is compiled into or distributed with txbox.
package main
