#!/usr/bin/env bash
# The benchmark profile: PostgreSQL and MariaDB with production durability, on ports and in a state directory of
# their own, so that `make bench` never measures (or disturbs) the fast test services of scripts/services.sh.
#
#   scripts/bench-services.sh up      start both (creating them on first use), wait until ready
#   scripts/bench-services.sh down    stop what this profile started, nothing else
#   scripts/bench-services.sh status  one line per service
#   scripts/bench-services.sh env     print `export TXBOX_BENCH_...=` lines for cmd/txbox-bench and bench/
#
# Durable means: PostgreSQL fsync=on, synchronous_commit=on, full_page_writes=on; MariaDB
# innodb_flush_log_at_trx_commit=1 (its binary log is off, so sync_binlog does not apply). The benchmark reads
# these settings back from each server and prints them, so a profile created some other way cannot pass for
# durable. Ports: TXBOX_BENCH_PG_PORT (default 55442), TXBOX_BENCH_MYSQL_PORT (53316); state directory
# TXBOX_BENCH_STATE_DIR (default /var/tmp/txbox-bench).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export TXBOX_STATE_DIR=${TXBOX_BENCH_STATE_DIR:-/var/tmp/txbox-bench}
export TXBOX_PG_PORT=${TXBOX_BENCH_PG_PORT:-55442}
export TXBOX_MYSQL_PORT=${TXBOX_BENCH_MYSQL_PORT:-53316}
export TXBOX_PG_DURABLE=1 TXBOX_MYSQL_DURABLE=1

# A cluster created before as a test instance (fsync off) keeps its postgresql.conf: refuse it rather than
# quote its figures as durable.
check_pg_conf() {
	local conf=$TXBOX_STATE_DIR/postgres/data/postgresql.conf
	if [[ -f $conf ]] && grep -q '^fsync = off' "$conf"; then
		echo "[bench] $conf has fsync = off: not a durable cluster; remove $TXBOX_STATE_DIR/postgres" >&2
		exit 1
	fi
}

case "${1:-}" in
up)
	check_pg_conf
	"$here/postgres.sh" start
	"$here/mariadb.sh" start
	;;
down)
	rc=0
	"$here/postgres.sh" stop || rc=1
	"$here/mariadb.sh" stop || rc=1
	exit $rc
	;;
status)
	rc=0
	"$here/postgres.sh" status || rc=1
	"$here/mariadb.sh" status || rc=1
	exit $rc
	;;
env)
	# The same DSNs the test scripts print, under the names the benchmarks read for the durable profile.
	"$here/postgres.sh" env | sed 's/TXBOX_POSTGRES_DSN/TXBOX_BENCH_POSTGRES_DSN/'
	"$here/mariadb.sh" env | sed 's/TXBOX_MYSQL_DSN/TXBOX_BENCH_MYSQL_DSN/'
	;;
*)
	echo "usage: $0 up|down|status|env" >&2
	exit 2
	;;
esac
