#!/usr/bin/env bash
# Dependency hygiene, run by `make lint`: `go mod tidy` must leave go.mod and go.sum unchanged, and every module
# go.mod requires directly must be named (in backquotes) in README.md's "## Dependencies" section, with why.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}

tmp=$(mktemp -d)
trap 'cp "$tmp/go.mod" go.mod; cp "$tmp/go.sum" go.sum; rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp/"
$GO mod tidy
if ! cmp -s go.mod "$tmp/go.mod" || ! cmp -s go.sum "$tmp/go.sum"; then
	echo "modcheck: go mod tidy changes go.mod or go.sum; run it and commit the result:" >&2
	diff -u "$tmp/go.mod" go.mod >&2 || true
	diff -u "$tmp/go.sum" go.sum >&2 || true
	exit 1
fi

section=$(sed -n '/^## Dependencies$/,/^## /p' README.md)
missing=0
for mod in $($GO list -m -f '{{if not (or .Main .Indirect)}}{{.Path}}{{end}}' all); do
	if ! grep -qF "\`$mod\`" <<<"$section"; then
		echo "modcheck: go.mod requires $mod, but README.md's Dependencies section does not say why" >&2
		missing=1
	fi
done
exit $missing
