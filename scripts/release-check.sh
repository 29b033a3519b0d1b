#!/usr/bin/env bash
# The release checks that `make test` does not already do (make release-check runs make test first):
# a clean checkout, go mod verify, every package documented, the licenses, the schema upgrade from the first
# wave run on all three test targets, and a dated CHANGELOG heading for the release (RELEASE=vX.Y.Z, default:
# the newest version heading in CHANGELOG.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
fail() { echo "release-check: $*" >&2; exit 1; }
step() { echo "release-check: $*"; }

step "clean checkout"
[ -z "$(git status --porcelain --untracked-files=normal)" ] || fail "the work tree has changes: $(git status --porcelain | head -5)"

step "go mod verify"
$GO mod verify >/dev/null || fail "go mod verify failed"

step "every package has a doc.go with a package comment"
while read -r dir doc; do
	[ -f "$dir/doc.go" ] || fail "$dir has no doc.go"
	[ -n "$doc" ] || fail "$dir has no package comment"
done < <($GO list -f '{{.Dir}} {{.Doc}}' ./...)
for pkg in $($GO list ./...); do
	$GO doc -all "$pkg" >/dev/null || fail "go doc $pkg failed"
done

step "licenses"
$GO run ./internal/licenses >/dev/null || fail "a linked module's license is unknown or incompatible (make licenses)"

step "schema upgrade from the first wave (TestUpgradeFromTheFirstWave)"
eval "$(scripts/services.sh env)"
out=$(CI=1 $GO test -count=1 -v -run '^TestUpgradeFromTheFirstWave$' ./migrations) || { echo "$out"; fail "the upgrade test failed"; }
passed=$(grep -c -- '--- PASS: TestUpgradeFromTheFirstWave/' <<<"$out" || true)
[ "$passed" -eq 3 ] || { echo "$out"; fail "the upgrade test passed on $passed targets, want 3 (mariadb, postgres-pq, postgres-pgx)"; }

step "CHANGELOG"
version=${RELEASE:-}
if [ -z "$version" ]; then
	version=v$(sed -n 's/^## \[\([0-9][^]]*\)\].*/\1/p' CHANGELOG.md | head -1)
	[ "$version" != v ] || fail "CHANGELOG.md has no version heading (## [X.Y.Z] - YYYY-MM-DD)"
fi
grep -qE "^## \[${version#v}\] - [0-9]{4}-[0-9]{2}-[0-9]{2}$" CHANGELOG.md ||
	fail "CHANGELOG.md has no dated heading \"## [${version#v}] - YYYY-MM-DD\""
step "ready to tag $version"
