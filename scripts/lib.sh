# shellcheck shell=bash
# Shared helpers for the service scripts. Sourced, not run.
#
# Every service keeps its state (data, logs, pid file) under $TXBOX_STATE_DIR/<service>. The directory is
# machine-wide on purpose: several checkouts (and CI's fresh clone) find and reuse the services already started,
# instead of starting a second copy on the same port.
set -euo pipefail

TXBOX_STATE_DIR=${TXBOX_STATE_DIR:-/var/tmp/txbox}

log() { printf '[%s] %s\n' "${SERVICE:-services}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_until SECONDS DESCRIPTION CMD...: polls CMD every 0.2 s until it succeeds or the deadline passes.
wait_until() {
	local timeout=$1 what=$2; shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			log "timed out after ${timeout}s waiting for $what"
			return 1
		fi
		sleep 0.2
	done
}

# pid_alive FILE: true when FILE holds the pid of a live process.
pid_alive() {
	[[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_pid FILE NAME: TERM the process in FILE, wait up to 60 s, then KILL. Only ever what we started.
stop_pid() {
	local file=$1 name=$2 pid
	if ! pid_alive "$file"; then
		log "$name is not running (no live pid in $file)"
		rm -f "$file"
		return 0
	fi
	pid=$(cat "$file")
	log "stopping $name (pid $pid)"
	kill -TERM "$pid"
	if ! wait_until 60 "$name to exit" bash -c "! kill -0 $pid"; then
		log "$name did not exit on TERM; sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$file"
}

apt_updated=
# apt_install PKG...: installs the Debian packages that are missing, without letting their maintainer scripts
# start system-wide daemons (we run our own instances on our own ports).
apt_install() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	[[ $(id -u) == 0 ]] || die "need root to install ${missing[*]} (or install them yourself)"
	log "installing ${missing[*]}"
	local policy=/usr/sbin/policy-rc.d created_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
	fi
	if [[ -z $apt_updated ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		apt_updated=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
	[[ -n $created_policy ]] && rm -f "$policy"
	((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"
}
