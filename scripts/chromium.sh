#!/usr/bin/env bash
# Headless Chromium for the console's browser test (console/browser_test.go), from Debian's packages.
# Nothing is started here: the test launches its own browser, with a fresh profile, and stops it.
# Usage: scripts/chromium.sh install|status|env
SERVICE=chromium
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

browser() { command -v chromium 2>/dev/null || true; }

# fonts-dejavu-core: without a font the screenshots show boxes for text.
cmd_install() { apt_install chromium fonts-dejavu-core; }

cmd_status() {
	local b; b=$(browser)
	[[ -n $b ]] && echo "chromium: $("$b" --version 2>/dev/null || echo "$b")" || { echo "chromium: not installed"; return 1; }
}

cmd_env() {
	local b; b=$(browser)
	[[ -n $b ]] && echo "export TXBOX_CHROMIUM='$b'"
	return 0
}

case "${1:-}" in
install | status | env) "cmd_$1" ;;
*) echo "usage: $0 install|status|env" >&2; exit 2 ;;
esac
