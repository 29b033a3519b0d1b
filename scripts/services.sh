#!/usr/bin/env bash
# Installs and starts every service txbox's tests and demo need, on 127.0.0.1 only:
# PostgreSQL, MariaDB, Redis and (when scripts/rocketmq.sh is present) a RocketMQ name server + broker.
#
#   scripts/services.sh up      install what is missing, start what is not running, wait until ready
#   scripts/services.sh down    stop what these scripts started (by pid / data dir), nothing else
#   scripts/services.sh status  one line per service
#   scripts/services.sh env     print `export TXBOX_...=` lines for the DSNs and addresses the tests read
#
# Ports and the state directory can be changed with TXBOX_PG_PORT, TXBOX_MYSQL_PORT, TXBOX_REDIS_PORT, TXBOX_STATE_DIR.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

services=(postgres mariadb redis)
[[ -x $here/rocketmq.sh ]] && services+=(rocketmq)

case "${1:-}" in
up)
	for s in "${services[@]}"; do "$here/$s.sh" start; done
	;;
down)
	rc=0
	for s in "${services[@]}"; do "$here/$s.sh" stop || rc=1; done
	exit $rc
	;;
status)
	rc=0
	for s in "${services[@]}"; do "$here/$s.sh" status || rc=1; done
	exit $rc
	;;
env)
	for s in "${services[@]}"; do "$here/$s.sh" env; done
	;;
*)
	echo "usage: $0 up|down|status|env" >&2
	exit 2
	;;
esac
